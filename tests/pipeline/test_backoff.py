"""Retries of a delivery: the backoff schedule and its maximum."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integration.models import (
    OrderSync,
    SyncStatus,
)
from integration.pipeline.dispatch import dispatch_due
from integration.plugins.contract import TransientError
from tests.fake_feed import feed_item
from tests.pipeline.steps import cycle, make_due

pytestmark = pytest.mark.django_db


def test_transient_errors_follow_the_backoff_schedule_and_stop_at_the_maximum(account, bindings, feed, oms, recorder, settings):
    settings.SYNC_BACKOFF_SECONDS = [60, 300, 900]
    settings.SYNC_MAX_ATTEMPTS = 4
    recorder.always["rec_a"] = TransientError("ERP is down")
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    before = timezone.now()
    cycle(account)
    after = timezone.now()
    sync = OrderSync.objects.get(binding__adapter_key="rec_a")
    windows = []
    for _ in range(3):
        sync.refresh_from_db()
        # The attempt failed between `before` and `after`: the wait it scheduled lies in this window
        # (wide by the time the attempt took, however loaded the machine; a millisecond of slack
        # for SQLite's clock, which keeps milliseconds).
        slack = timedelta(milliseconds=1)
        windows.append(((sync.next_attempt_at - after - slack).total_seconds(),
                        (sync.next_attempt_at - before + slack).total_seconds()))
        assert dispatch_due(budget=5).orders == 0  # not due yet
        make_due()
        before = timezone.now()
        dispatch_due(budget=5)
        after = timezone.now()
    sync.refresh_from_db()
    assert all(low <= wait <= high for wait, (low, high) in zip([60, 300, 900], windows)), windows
    assert sync.status == SyncStatus.FAILED and sync.attempts == 4 and "gave up after 4 attempts" in sync.last_error
    assert recorder.count("rec_a") == 4
    keys = {c[3] for c in recorder.calls if c[0] == "rec_a"}
    assert keys == {sync.idempotency_key}  # stable across retries
