"""What a worker that died (SIGKILL, a lost machine, a database restart) left half done, and the
scheduled catch-up that runs after it."""
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models.functions import Now

from integration.models import Account, AttemptOutcome, Order, SyncAttempt
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.leases import clear_expired
from integration.pipeline.outbox import send_due
from integration.pipeline.routing import sweep_unrouted
from integration.pipeline.start_handling import make_stranded_due, recover_interrupted

log = logging.getLogger(__name__)


def recover_stale_work():
    """Its claims and leases expire by themselves (SYNC_CLAIM_TTL, FEED_LEASE_TTL); here the
    expired ones are cleared, a start-handling it had claimed, or never got to make due after
    the last delivery, is made due, and adapter calls it never finished are closed in their
    history (the sync itself is still pending and is retried with the same idempotency key).
    """
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


def catch_up():
    """Every minute: recover stale work, route what was stored and never routed, dispatch
    whatever the broker lost or retries made due, and send the updates to VTEX that are due."""
    recovered = recover_stale_work()
    swept = sweep_unrouted()
    line = dispatch_due(account_id=None).line()
    return f"{recovered}; swept {swept} unrouted events; {line}; {send_due(account_id=None).line()}"
