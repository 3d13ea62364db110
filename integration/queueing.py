"""Enqueue django-q2 tasks the right way for the configured broker.

Services ask for work here, by the task's dotted name: they never import the task layer.
"""
import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from integration.env import env_str

log = logging.getLogger(__name__)

FEED_CYCLE_TASK = "integration.tasks.feed_cycle_for_account"
DISPATCH_TASK = "integration.tasks.dispatch"


def enqueue(func, *args, **kwargs):
    """With the ORM broker the task row joins the current transaction (rolled back with it);
    with Redis it must wait for the commit, or a worker could run before the rows exist.

    Tasks go to the main queue unless `cluster=` names another: django-q2 would otherwise use
    the queue of the process that enqueues, and a feed-only cluster (FEED_CLUSTER) must hand
    the dispatch its intake triggers to the main cluster, not keep it."""
    # django_q.tasks imports django_q's models: it can only be imported once the apps are loaded.
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


def feed_queue():
    """The django-q2 queue feed cycles go to: FEED_CLUSTER when set, else the main queue.

    A second cluster started on that queue runs intake only, so long feed cycles never hold
    the workers that dispatch needs (README, "Deployment": keeping intake from starving dispatch).
    """
    # settings.FEED_CLUSTER once settings.py declares it; read from the environment until then.
    return getattr(settings, "FEED_CLUSTER", None) or env_str("FEED_CLUSTER") or None


def enqueue_feed_cycle(account_id, *, task_name=None):
    options = {"task_name": task_name or f"feed-cycle-{account_id}"}
    queue = feed_queue()
    if queue:
        options["cluster"] = queue
    enqueue(FEED_CYCLE_TASK, account_id, **options)


def enqueue_dispatch(account_id=None, *, dedupe=True):
    """Ask for a dispatch of the store's due work.

    Intake calls this for every batch; one queued dispatch per store every 2 s is enough, the
    rest would only wait in the queue to find nothing due. An operator's "Retry now" passes
    `dedupe=False`: a dispatch queued a moment earlier may already have looked and found nothing,
    and the retried work would then wait for the scheduled dispatcher (a minute)."""
    if not dedupe:
        enqueue(DISPATCH_TASK, account_id)
        return
    try:
        first = cache.add(f"vtexhub:dispatch-queued:{account_id}", 1, timeout=2)
    except Exception as exc:  # the cache is Redis, and Redis is down: the batch is stored, so
        # intake must go on and commit it (enqueue tolerates the broker being down too; the
        # scheduled dispatcher picks up what was not enqueued).
        log.warning("dispatch de-duplication unavailable (%s: %s); enqueuing anyway", type(exc).__name__, exc)
        first = True
    if first:
        enqueue(DISPATCH_TASK, account_id)
