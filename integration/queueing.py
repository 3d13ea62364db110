"""Enqueue django-q2 tasks the right way for the configured broker."""
import logging

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


def enqueue(func, *args, **kwargs):
    """With the ORM broker the task row joins the current transaction (rolled back with it);
    with Redis it must wait for the commit, or a worker could run before the rows exist.

    Tasks go to the main queue unless `cluster=` names another: django-q2 would otherwise use
    the queue of the process that enqueues, and a feed-only cluster (FEED_CLUSTER) must hand
    the dispatch its intake triggers to the main cluster, not keep it."""
    from django_q.tasks import async_task

    kwargs.setdefault("cluster", settings.Q_CLUSTER.get("name"))

    def send():
        try:
            async_task(func, *args, **kwargs)
        except Exception:  # a broker outage must not undo stored work: the scheduled dispatcher catches up
            log.exception("could not enqueue %s", func)

    if settings.REDIS_URL:
        transaction.on_commit(send)
    else:
        send()
