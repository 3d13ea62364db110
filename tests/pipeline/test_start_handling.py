"""Start-handling: after the gating deliveries, once, with its own retries and holds."""

import pytest
from django.utils import timezone

from integration.models import (
    AdapterBinding,
    Order,
    OrderSync,
    StartHandlingState,
    SyncStatus,
)
from integration.pipeline.dispatch import dispatch_due
from integration.plugins.contract import TransientError
from tests.fake_feed import feed_item
from tests.pipeline.steps import cycle, make_due

pytestmark = pytest.mark.django_db


def test_a_retry_that_succeeds_unlocks_start_handling(account, bindings, feed, oms, recorder):
    recorder.script["rec_a"] = [TransientError("timeout")]
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    cycle(account)
    assert oms.start_handling_calls == {}
    make_due()
    dispatch_due(budget=5)
    assert oms.start_handling_calls == {"1-01": 1}
    assert recorder.count("rec_a") == 2 and recorder.count("rec_b") == 1


def test_a_non_gating_binding_does_not_hold_start_handling(account, bindings, feed, oms, recorder):
    a, b = bindings
    AdapterBinding.objects.filter(pk=b.pk).update(gates_start_handling=False)
    recorder.always["rec_b"] = TransientError("slow")
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    cycle(account)
    assert oms.start_handling_calls == {"1-01": 1}
    # The order is now 'handling' in VTEX; the non-gating send still goes out on retry.
    del recorder.always["rec_b"]
    make_due()
    dispatch_due(budget=5)
    assert OrderSync.objects.get(binding=b).status == SyncStatus.SUCCEEDED


def test_409_oms003_is_recorded_and_not_retried(account, bindings, feed, oms, recorder):
    oms.add("1-01")
    oms.start_handling_status = 409
    feed.add(feed_item("1-01"))
    cycle(account)
    order = Order.objects.get()
    assert order.start_handling_state == StartHandlingState.CONFLICT
    assert "OMS003" in order.start_handling_record and "handling" in order.start_handling_record
    make_due()
    dispatch_due(budget=5)
    assert oms.start_handling_calls == {"1-01": 1}


def test_start_handling_5xx_retries_quickly_then_schedules(account, bindings, feed, oms, recorder):
    oms.add("1-01")
    oms.start_handling_status = 500
    feed.add(feed_item("1-01"))
    cycle(account)
    order = Order.objects.get()
    assert oms.start_handling_calls == {"1-01": 3}  # one call and two quick retries
    assert order.start_handling_state == StartHandlingState.PENDING and order.start_handling_due_at > timezone.now()
    oms.start_handling_status = None
    make_due()
    dispatch_due(budget=5)
    order.refresh_from_db()
    assert order.start_handling_state == StartHandlingState.DONE and oms.start_handling_calls == {"1-01": 4}


def test_store_can_switch_start_handling_off(account, bindings, feed, oms, recorder):
    type(account).objects.filter(pk=account.pk).update(call_start_handling=False)
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    cycle(account)
    assert recorder.count() == 2 and oms.start_handling_calls == {}
    assert Order.objects.get().start_handling_state == StartHandlingState.SKIPPED


def test_an_order_not_ready_in_vtex_is_held_for_the_operator(account, bindings, feed, oms, recorder):
    oms.add("1-01", "payment-pending")
    feed.add(feed_item("1-01"))
    cycle(account)
    assert recorder.count() == 0
    syncs = OrderSync.objects.all()
    assert {s.status for s in syncs} == {SyncStatus.HELD}
    assert "payment-pending" in syncs[0].hold_reason
