"""django-q2 task entry points: thin wrappers around the services."""
import logging

from django.core.cache import cache

from integration.health import flush_response_counts
from integration.queueing import enqueue

log = logging.getLogger(__name__)


def run_feed_cycles():
    """Scheduled every minute: fan out one task per store that polls its feed."""
    from integration.pipeline.feed_cycle import feed_accounts

    ids = list(feed_accounts().values_list("pk", flat=True))
    for pk in ids:
        enqueue_feed_cycle(pk)
    return len(ids)


def feed_queue():
    """The django-q2 queue feed cycles go to: FEED_CLUSTER when set, else the main queue.

    A second cluster started on that queue runs intake only, so long feed cycles never hold
    the workers that dispatch needs (README, "Deployment": keeping intake from starving dispatch).
    """
    from django.conf import settings

    from integration.env import env_str

    # settings.FEED_CLUSTER once settings.py declares it; read from the environment until then.
    return getattr(settings, "FEED_CLUSTER", None) or env_str("FEED_CLUSTER") or None


def enqueue_feed_cycle(account_id):
    options = {"task_name": f"feed-cycle-{account_id}"}
    queue = feed_queue()
    if queue:
        options["cluster"] = queue
    enqueue("integration.tasks.feed_cycle_for_account", account_id, **options)


def feed_cycle_for_account(account_id):
    from integration.pipeline.feed_cycle import run_feed_cycle
    from integration.models import Account

    account = Account.objects.filter(pk=account_id, active=True).first()
    if account is None:
        return "store gone or inactive"
    try:
        summary = run_feed_cycle(account)
        if summary.ok and not summary.skipped and not summary.drained:
            # The time budget ran out with the feed still full (a backlog): the next cycle starts
            # now instead of at the next minute of the schedule.
            enqueue_feed_cycle(account_id)
        return summary.line()
    finally:
        flush_response_counts()


def enqueue_dispatch(account_id=None):
    # Intake calls this for every batch; one queued dispatch per store is enough, the rest
    # would only wait in the queue to find nothing due.
    try:
        first = cache.add(f"vtexhub:dispatch-queued:{account_id}", 1, timeout=2)
    except Exception as exc:  # the cache is Redis, and Redis is down: the batch is stored, so
        # intake must go on and commit it (enqueue tolerates the broker being down too; the
        # scheduled dispatcher picks up what was not enqueued).
        log.warning("dispatch de-duplication unavailable (%s: %s); enqueuing anyway", type(exc).__name__, exc)
        first = True
    if first:
        enqueue("integration.tasks.dispatch", account_id)


def dispatch(account_id=None):
    from integration.pipeline.dispatch import dispatch_due

    try:
        return dispatch_due(account_id=account_id).line()
    finally:
        flush_response_counts()


def dispatch_all_due():
    """Scheduled every minute: whatever the broker lost or retries made due."""
    from integration.pipeline.routing import sweep_unrouted

    recovered = recover_stale_work()
    swept = sweep_unrouted()
    line = dispatch(None)
    return f"{recovered}; swept {swept} unrouted events; {line}; {send_updates(None)}"


def send_updates(account_id=None):
    """The outbox to VTEX (invoices, tracking, cancels): enqueued when an update is accepted,
    and run by the scheduled dispatcher for what waited or failed transiently."""
    from integration.pipeline.outbox import send_due

    try:
        return send_due(account_id=account_id).line()
    finally:
        flush_response_counts()


def poll_adapter_updates():
    """Scheduled: every binding whose adapter can report updates from its ERP is asked for them."""
    from integration.pipeline.adapter_updates import poll_all

    return poll_all().line()


def recover_stale_work():
    """What a worker that died (SIGKILL, a lost machine, a database restart) left half done.

    Its claims and leases expire by themselves (SYNC_CLAIM_TTL, FEED_LEASE_TTL); here the
    expired ones are cleared, a start-handling it had claimed, or never got to make due after
    the last delivery, is made due, and adapter calls it never finished are closed in their
    history (the sync itself is still pending and is retried with the same idempotency key).
    """
    from datetime import timedelta

    from django.conf import settings
    from django.db.models.functions import Now

    from integration.pipeline.leases import clear_expired
    from integration.models import Account, AttemptOutcome, Order, SyncAttempt
    from integration.pipeline.start_handling import make_stranded_due, recover_interrupted

    start_handling = recover_interrupted()  # before the claims are cleared: it looks for expired ones
    start_handling += make_stranded_due()
    claims = clear_expired(Order.objects.all(), owner_field="claimed_by", until_field="claimed_until")
    leases = clear_expired(Account.objects.all())
    attempts = SyncAttempt.objects.filter(
        outcome=AttemptOutcome.RUNNING, started_at__lt=Now() - timedelta(seconds=settings.SYNC_CLAIM_TTL),
    ).update(outcome=AttemptOutcome.TRANSIENT, error="The worker stopped during this call (killed, restarted or lost its "
             "database) and never recorded the answer; the sync is retried with the same idempotency key.")
    if start_handling or claims or leases or attempts:
        log.warning("recovered after a stopped worker: %s expired order claims, %s feed leases, %s start-handling calls, "
                    "%s unfinished adapter calls", claims, leases, start_handling, attempts)
    return f"recovered {claims} claims, {leases} leases, {start_handling} start-handling, {attempts} attempts"


def reconcile():
    from integration.pipeline.reconciliation import reconcile_all

    try:
        return "; ".join(r.line() for r in reconcile_all())
    finally:
        flush_response_counts()


def prune():
    from integration.retention import prune as prune_now

    return prune_now().line()


def check_alerts():
    from integration.alerts import check_alerts as check

    try:
        check()
    finally:
        flush_response_counts()
