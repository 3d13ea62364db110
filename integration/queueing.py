"""Enqueue django-q2 tasks the right way for the configured broker.

Services ask for work here, by the task's dotted name: they never import the task layer.
"""
import logging

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.db.models.functions import Now

from integration.env import env_str

log = logging.getLogger(__name__)

FEED_CYCLE_TASK = "integration.tasks.feed_cycle_for_account"
FEED_POLLER_TASK = "integration.tasks.poll_feeds"
DISPATCH_TASK = "integration.tasks.dispatch"
# A queued dispatch that never starts (a task the Redis broker lost) stops holding back new ones after this.
DISPATCH_QUEUED_FOR = timedelta(seconds=60)


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


def enqueue_feed_poller(token):
    """The feed poller that will take the slot reserved under `token` (integration.pipeline.feed_poller).

    Sent at once, never inside a transaction (its callers run in autocommit); False when the
    broker refused it, so the caller frees the slot for the next start instead of keeping it
    reserved for a task that does not exist."""
    from django_q.tasks import async_task

    queue = feed_queue() or settings.Q_CLUSTER.get("name")
    try:
        async_task(FEED_POLLER_TASK, token, task_name="feed poller", cluster=queue)
    except Exception:
        log.exception("could not enqueue the feed poller")
        return False
    return True


def enqueue_dispatch(account_id=None, *, dedupe=True):
    """Ask for a dispatch of the store's due work.

    Intake calls this for every batch it stores. One queued dispatch per store is enough: it
    sees every sync committed before it starts (`dispatch_started` clears the mark first). So a
    dispatch is enqueued only when none of the store's is waiting, and the decision is taken
    after the caller's commit: a dispatch that starts in between still sees the new rows, one
    that started before them is followed by a new one. Nothing waits for the minute sweep.
    An operator's "Retry now" passes `dedupe=False`."""
    if not dedupe or account_id is None:
        enqueue(DISPATCH_TASK, account_id)
        return

    def mark_and_send():
        from integration.models import Account

        try:
            first = Account.objects.filter(Q(dispatch_queued_until__isnull=True) | Q(dispatch_queued_until__lt=Now()),
                                           pk=account_id).update(dispatch_queued_until=Now() + DISPATCH_QUEUED_FOR)
        except DatabaseError as exc:  # the batch is stored: enqueue anyway (the sweep would catch up too)
            log.warning("dispatch de-duplication unavailable (%s: %s); enqueuing anyway", type(exc).__name__, exc)
            first = True
        if first:
            enqueue(DISPATCH_TASK, account_id)

    transaction.on_commit(mark_and_send)


def dispatch_started(account_id):
    """A dispatch of the store starts: the next batch intake stores must enqueue another."""
    if account_id is not None:
        from integration.models import Account

        Account.objects.filter(pk=account_id).exclude(dispatch_queued_until=None).update(dispatch_queued_until=None)
