"""Steps the pipeline tests share: run a feed cycle then dispatch, and let time pass for retries."""
from datetime import timedelta

from django.utils import timezone

from integration.models import Order, OrderSync, StartHandlingState, SyncStatus
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle


def make_due():
    """Time passes: every pending retry becomes due now."""
    OrderSync.objects.filter(status=SyncStatus.PENDING).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    Order.objects.filter(start_handling_state=StartHandlingState.PENDING, start_handling_due_at__isnull=False).update(
        start_handling_due_at=timezone.now() - timedelta(seconds=1))


def cycle(account):
    summary = run_feed_cycle(account)
    assert summary.ok, summary.error
    return dispatch_due(budget=30)
