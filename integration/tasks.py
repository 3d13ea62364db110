"""django-q2 task entry points: thin wrappers around the services."""
import logging

from django.core.cache import cache

from integration.health import flush_response_counts
from integration.queueing import enqueue

log = logging.getLogger(__name__)


def run_feed_cycles():
    """Scheduled every minute: fan out one task per store that polls its feed."""
    from integration.feed_cycle import feed_accounts

    ids = list(feed_accounts().values_list("pk", flat=True))
    for pk in ids:
        enqueue("integration.tasks.feed_cycle_for_account", pk, task_name=f"feed-cycle-{pk}")
    return len(ids)


def feed_cycle_for_account(account_id):
    from integration.feed_cycle import run_feed_cycle
    from integration.models import Account

    account = Account.objects.filter(pk=account_id, active=True).first()
    if account is None:
        return "store gone or inactive"
    try:
        return run_feed_cycle(account).line()
    finally:
        flush_response_counts()


def enqueue_dispatch(account_id=None):
    # Intake calls this for every batch; one queued dispatch per store is enough, the rest
    # would only wait in the queue to find nothing due.
    if cache.add(f"vtexhub:dispatch-queued:{account_id}", 1, timeout=2):
        enqueue("integration.tasks.dispatch", account_id)


def dispatch(account_id=None):
    from integration.dispatch import dispatch_due

    try:
        return dispatch_due(account_id=account_id).line()
    finally:
        flush_response_counts()


def dispatch_all_due():
    """Scheduled every minute: whatever the broker lost or retries made due."""
    from integration.routing import sweep_unrouted

    swept = sweep_unrouted()
    line = dispatch(None)
    return f"swept {swept} unrouted events; {line}"


def reconcile():
    from integration.reconciliation import reconcile_all

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
