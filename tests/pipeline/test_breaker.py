from datetime import timedelta

import pytest
from django.utils import timezone

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import AdapterBinding, OrderSync, SyncStatus
from integration.plugins.contract import TransientError
from tests.fake_feed import feed_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_binding(account, recorder):
    return AdapterBinding.objects.create(account=account, adapter_key="rec_a", name="A")


def make_due():
    OrderSync.objects.filter(status=SyncStatus.PENDING).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_the_breaker_opens_holds_syncs_probes_and_closes(account, one_binding, feed, oms, recorder, settings):
    settings.BREAKER_THRESHOLD = 3
    settings.BREAKER_OPEN_SECONDS = 300
    recorder.always["rec_a"] = TransientError("ERP down")
    for n in range(10):
        oms.add(f"{n}-01")
        feed.add(feed_item(f"{n}-01"))
    run_feed_cycle(account)
    dispatch_due(budget=10)
    # Three calls failed, then the breaker opened: the other seven syncs were held without an attempt.
    assert recorder.count("rec_a") == 3
    one_binding.refresh_from_db()
    assert one_binding.breaker_open_until > timezone.now()
    attempts = sorted(OrderSync.objects.values_list("attempts", flat=True))
    assert attempts == [0] * 7 + [1] * 3
    make_due()
    dispatch_due(budget=5)
    assert recorder.count("rec_a") == 3  # still open: nothing called
    # The open period ends: exactly one probe goes out; it fails, and the breaker opens again.
    AdapterBinding.objects.filter(pk=one_binding.pk).update(breaker_open_until=timezone.now() - timedelta(seconds=1))
    dispatch_due(budget=5)
    assert recorder.count("rec_a") == 4
    # The ERP is back: the next probe succeeds, the breaker closes and everything flows.
    del recorder.always["rec_a"]
    AdapterBinding.objects.filter(pk=one_binding.pk).update(breaker_open_until=timezone.now() - timedelta(seconds=1))
    make_due()
    dispatch_due(budget=10)
    one_binding.refresh_from_db()
    assert one_binding.breaker_failures == 0 and one_binding.breaker_open_until is None
    assert OrderSync.objects.filter(status=SyncStatus.SUCCEEDED).count() == 10
    assert len(oms.start_handling_calls) == 10
