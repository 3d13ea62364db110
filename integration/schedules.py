"""The django-q2 schedules the hub needs, created idempotently at migrate time, and what runs
as a cluster starts instead of waiting for them."""
import logging

log = logging.getLogger(__name__)

SCHEDULES = [
    # (name, func, minutes)
    # Starts the feed poller if none runs (it hands itself over and polls every few seconds;
    # this is the safety net for a poller lost with its worker or its broker).
    ("vtexhub: feed cycle", "integration.tasks.run_feed_cycles", 1),
    ("vtexhub: dispatch due syncs", "integration.tasks.dispatch_all_due", 1),
    ("vtexhub: poll adapters for updates to VTEX", "integration.tasks.poll_adapter_updates", 1),
    ("vtexhub: re-register hooks", "integration.tasks.reregister_vtex_push", 1440),
    ("vtexhub: reconcile with VTEX's order list", "integration.tasks.reconcile", "RECONCILE_EVERY_MINUTES"),
    ("vtexhub: check alerts", "integration.tasks.check_alerts", 5),
    ("vtexhub: prune old rows", "integration.tasks.prune", 1440),
]


def ensure_schedules(**kwargs):
    # Called after migrate; apps.py imports this module before django_q's models are loaded.
    from django.conf import settings
    from django_q.models import Schedule

    for name, func, minutes in SCHEDULES:
        if isinstance(minutes, str):
            minutes = getattr(settings, minutes)
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )


def start_feed_poller_on_worker_spawn(sender=None, proc_name=None, **kwargs):
    """django-q2's `post_spawn`: a worker process of a cluster started (or was recycled).

    django-q2's scheduler first looks at the schedules 30 s after the cluster starts; the first
    feed poll would wait that long, and a restart would leave the feed unread meanwhile. So the
    first worker to spawn starts the poller (only into a free slot: the other workers, and a
    recycled worker later, find it taken and do nothing). Never raises: an exception here would
    kill the worker and django-q2 would spawn it again, in a loop.
    """
    from django.db import connection

    from integration.pipeline.feed_poller import start_poller

    try:
        if start_poller():
            log.info("feed poller started as the cluster's worker %s started", proc_name)
    except Exception as exc:  # the minute schedule starts it instead
        log.warning("could not start the feed poller at worker start (%s: %s); the schedule will", type(exc).__name__, exc)
    finally:
        connection.close()
