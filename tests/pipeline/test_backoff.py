"""Retries of a delivery: the backoff schedule and its maximum."""

import pytest

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
    cycle(account)
    sync = OrderSync.objects.get(binding__adapter_key="rec_a")
    waits = []
    for _ in range(3):
        sync.refresh_from_db()
        waits.append(round((sync.next_attempt_at - sync.updated_at).total_seconds()))
        assert dispatch_due(budget=5).orders == 0  # not due yet
        make_due()
        dispatch_due(budget=5)
    sync.refresh_from_db()
    assert waits == [60, 300, 900]
    assert sync.status == SyncStatus.FAILED and sync.attempts == 4 and "gave up after 4 attempts" in sync.last_error
    assert recorder.count("rec_a") == 4
    keys = {c[3] for c in recorder.calls if c[0] == "rec_a"}
    assert keys == {sync.idempotency_key}  # stable across retries
