"""django-q2 task entry points: each one call to a service (`integration.queueing` names them).

Every task that may call VTEX flushes the process's VTEX response counts when it ends.
"""
import functools

from integration import alerts, queueing, retention
from integration.health import flush_response_counts
from integration.pipeline import (
    adapter_updates, dispatch as dispatching, feed_cycle, feed_poller, outbox, reconciliation, recovery,
)
from integration.vtex_push import registration


def _flushing_counts(task):
    @functools.wraps(task)
    def run(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        finally:
            flush_response_counts()

    return run


def run_feed_cycles():
    """Scheduled every minute: start the feed poller if none runs (it polls every feed-mode store)."""
    return "feed poller started" if feed_poller.start_poller() else "feed poller already running"


@_flushing_counts
def poll_feeds(token=""):
    return feed_poller.run_poller(token).line()


@_flushing_counts
def feed_cycle_for_account(account_id):
    return feed_cycle.run_queued_feed_cycle(account_id)


@_flushing_counts
def dispatch(account_id=None):
    queueing.dispatch_started(account_id)
    return dispatching.dispatch_due(account_id=account_id, then_any_store=True).line()


@_flushing_counts
def dispatch_all_due():
    """Scheduled every minute: recover stale work, sweep, dispatch what the broker lost or retries made due."""
    return recovery.catch_up()


@_flushing_counts
def send_updates(account_id=None):
    """The outbox to VTEX (invoices, tracking, cancels): enqueued when an update is accepted; the
    scheduled dispatcher sends what waited or failed transiently."""
    return outbox.send_due(account_id=account_id).line()


def poll_adapter_updates():
    """Scheduled: every binding whose adapter can report updates from its ERP is asked for them."""
    return adapter_updates.poll_all().line()


@_flushing_counts
def reconcile():
    return "; ".join(r.line() for r in reconciliation.reconcile_all())


def prune():
    return retention.prune().line()


@_flushing_counts
def check_alerts():
    alerts.check_alerts()


@_flushing_counts
def reregister_vtex_push():
    """Scheduled daily: register the VTEX push hook again for every store that uses it."""
    return registration.reregister_hooks()
