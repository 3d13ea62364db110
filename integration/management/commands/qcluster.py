"""`manage.py qcluster`: django-q2's command, with the hub's code loaded before the cluster forks.

django-q2 forks its sentinel from this process, and the sentinel forks the workers, the monitor
and the pusher. Everything loaded here beforehand is shared by all of them (copy-on-write);
everything a worker loads on its first task (the tasks and pipeline modules, the plugins and
their libraries: requests, paramiko and cryptography, pika) is a private copy in each worker.
And Python's cycle collector writes into every object it examines, so a full collection in a
child would copy the pages of everything inherited: `gc.freeze()` moves the inherited objects
out of its sight (they live as long as the cluster anyway).

It also creates the cluster's stop flag before the fork and sets it when the cluster stops
(`integration.shutdown`), so that the feed poller does not hold the stop for its whole run.

This command takes precedence over django-q2's because `integration` precedes `django_q` in
INSTALLED_APPS.
"""
import gc
import importlib
import logging
import os

from django import db
from django.conf import settings
from django.utils import translation
from django_q.cluster import Cluster
from django_q.conf import Conf
from django_q.management.commands import qcluster

from integration import shutdown

log = logging.getLogger("integration.cluster")


class HubCluster(Cluster):
    def stop(self):
        # Django-q2's signal handler calls stop() in this process; the forks see the flag at once.
        shutdown.request()
        return super().stop()


class Command(qcluster.Command):
    # No system checks at the cluster's start: they check the admin, the URLs, the templates and the
    # models' definitions, none of which changes between `migrate` (which runs them) and here, and
    # the URL check builds the whole web side (the ERP API's schemas): 0.3-0.4 s of CPU each start,
    # a sixth of a 2,000-order burst's start-up. `manage.py check --deploy` is a deploy step.
    requires_system_checks = []

    def handle(self, *args, **options):
        if settings.Q_CLUSTER_PRELOAD:
            try:
                preload_before_fork()
            except KeyboardInterrupt:  # Ctrl-C (or runhub stopping) in the second before the cluster starts
                log.info("stopped before the cluster started")
                return
        shutdown.prepare()
        # django-q2's own handle() (2.x), with the cluster above in place of its Cluster.
        settings.SECRET_KEY  # the cluster signs its tasks: fail here without a key
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = HubCluster()
        cluster.start()
        if options.get("run_once", False):
            cluster.stop()


def preload_before_fork():
    """Load what every worker would load on its first task, then freeze the heap, in this process."""
    # The task functions, and through them the pipeline, the VTEX client and the plugin API.
    importlib.import_module("integration.tasks")
    # The plugins: the built-in adapters and their optional libraries, and third-party entry points.
    # An adapter whose extra is missing is recorded as unavailable here exactly as in a worker.
    from integration.plugins.manager import get_registry

    get_registry()
    # The database backend's driver (psycopg or sqlite3) and the broker's client (redis), which
    # the sentinel and each worker would otherwise import after the fork; no connection is made.
    for alias in db.connections:
        db.utils.load_backend(settings.DATABASES[alias]["ENGINE"])
    importlib.import_module("django.db.models.sql.compiler")  # the ORM's first query imports it
    if not (Conf.BROKER_CLASS or Conf.IRON_MQ or Conf.SQS or Conf.ORM or Conf.MONGO):
        importlib.import_module("django_q.brokers.redis_broker")  # django-q2's default broker (REDIS_URL)
    # django-q2 logs translatable messages: the catalogues load once, here.
    translation.gettext("Q Cluster")
    db.connections.close_all()  # nothing opened above may be inherited by the forks
    gc.collect()
    gc.freeze()
    log.info("cluster preloaded: %d objects frozen before the workers fork", gc.get_freeze_count())
