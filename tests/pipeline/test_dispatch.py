import random
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import (
    AdapterBinding, AttemptOutcome, FeedEvent, Order, OrderSync, RoutingRule, StartHandlingState, SyncAttempt, SyncStatus,
)
from integration.plugins.contract import PermanentError, TransientError
from tests.fake_feed import feed_item

pytestmark = pytest.mark.django_db


def make_due():
    """Time passes: every pending retry becomes due now."""
    OrderSync.objects.filter(status=SyncStatus.PENDING).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    Order.objects.filter(start_handling_state=StartHandlingState.PENDING, start_handling_due_at__isnull=False).update(
        start_handling_due_at=timezone.now() - timedelta(seconds=1))


def cycle(account):
    summary = run_feed_cycle(account)
    assert summary.ok, summary.error
    return dispatch_due(budget=30)


def test_200_events_for_80_orders_give_one_delivery_per_order_and_binding(account, bindings, feed, oms, recorder):
    rng = random.Random(7)
    events = []
    for n in range(80):
        oid = f"{1000 + n}-01"
        oms.add(oid)
        ready = feed_item(oid, change=f"2026-11-27T10:{n % 60:02d}:00.0000000Z")
        events.append(ready)
        events.append(feed_item(oid, "window-to-cancel", change="2026-11-27T09:00:00Z", last_state="payment-approved"))
    for n in range(40):  # duplicates and twins of the ready event
        dup = dict(events[2 * n], handle=f"dup-{n}")
        events.append(dup if n % 2 else dict(dup, eventId=f"TWIN-{n}"))
    events = events[:200]
    rng.shuffle(events)  # out of order: window-to-cancel after ready-for-handling, duplicates anywhere
    feed.add(*events)
    assert len(events) == 200
    report = cycle(account)
    assert len(feed.committed) == 200
    assert FeedEvent.objects.count() == 160
    for key in ("rec_a", "rec_b"):
        delivered = [c[2] for c in recorder.calls if c[0] == key and c[1] == "send"]
        assert len(delivered) == 80 and len(set(delivered)) == 80
    assert len(oms.start_handling_calls) == 80 and set(oms.start_handling_calls.values()) == {1}
    assert report.start_handling == {StartHandlingState.DONE: 80}
    assert Order.objects.filter(start_handling_state=StartHandlingState.DONE).count() == 80
    # The same events again, and another dispatch: nothing more happens.
    feed.add(*[dict(e, handle=f"again-{i}") for i, e in enumerate(events[:50])])
    cycle(account)
    assert recorder.count() == 160 and set(oms.start_handling_calls.values()) == {1}


def test_ready_for_handling_after_canceled_never_ships(account, bindings, feed, oms, recorder):
    oms.add("1-01", "canceled")
    feed.add(feed_item("1-01", "canceled", change="2026-11-27T11:00:00Z"))
    cycle(account)
    feed.add(feed_item("1-01", "ready-for-handling", change="2026-11-27T10:00:00Z"))
    cycle(account)
    assert recorder.count() == 0
    assert not OrderSync.objects.filter(action="send").exists()
    assert oms.start_handling_calls == {}


def test_canceled_before_dispatch_skips_the_send_and_records_it(account, bindings, feed, oms, recorder):
    oms.add("1-01", "canceled")
    feed.add(feed_item("1-01"))
    run_feed_cycle(account)  # routed, not yet dispatched
    feed.add(feed_item("1-01", "canceled", change="2026-11-27T11:00:00Z"))
    cycle(account)
    assert recorder.count() == 0 and recorder.count(action="cancel") == 0
    sends = OrderSync.objects.filter(action="send")
    assert {s.status for s in sends} == {SyncStatus.SKIPPED}
    assert all("canceled" in s.hold_reason for s in sends)
    assert oms.start_handling_calls == {}


def test_cancel_after_delivery_calls_cancel_on_the_adapters(account, bindings, feed, oms, recorder):
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    cycle(account)
    oms.statuses["1-01"] = "canceled"
    feed.add(feed_item("1-01", "canceled", change="2026-11-27T12:00:00Z"))
    cycle(account)
    assert recorder.count(action="cancel") == 2
    assert OrderSync.objects.filter(action="cancel", status=SyncStatus.SUCCEEDED).count() == 2


def test_an_adapter_that_raises_does_not_stop_another(account, bindings, feed, oms, recorder):
    recorder.always["rec_a"] = RuntimeError("adapter bug")
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    cycle(account)
    assert recorder.count("rec_b") == 1
    a = OrderSync.objects.get(binding__adapter_key="rec_a")
    assert a.status == SyncStatus.PENDING and a.attempts == 1 and "adapter bug" in a.last_error
    attempt = SyncAttempt.objects.get(sync=a)
    assert attempt.outcome == AttemptOutcome.TRANSIENT and "RuntimeError" in attempt.traceback
    assert oms.start_handling_calls == {}  # rec_a gates start-handling and has not accepted the order


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


def test_a_permanent_error_fails_at_once(account, bindings, feed, oms, recorder):
    recorder.always["rec_a"] = PermanentError("ERP rejected the order: unknown SKU")
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    cycle(account)
    sync = OrderSync.objects.get(binding__adapter_key="rec_a")
    assert sync.status == SyncStatus.FAILED and sync.attempts == 1 and "unknown SKU" in sync.last_error


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


def test_paused_store_and_disabled_binding_hold_their_syncs(account, bindings, feed, oms, recorder):
    a, b = bindings
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    account.set_paused(True)
    cycle(account)
    assert recorder.count() == 0
    assert set(OrderSync.objects.values_list("status", flat=True)) == {SyncStatus.PENDING}
    AdapterBinding.objects.filter(pk=b.pk).update(enabled=False)
    account.set_paused(False)
    dispatch_due(budget=5)
    assert recorder.count("rec_a") == 1 and recorder.count("rec_b") == 0
    assert OrderSync.objects.get(binding=b).status == SyncStatus.PENDING
    AdapterBinding.objects.filter(pk=b.pk).update(enabled=True)
    dispatch_due(budget=5)
    assert recorder.count("rec_b") == 1 and oms.start_handling_calls == {"1-01": 1}


def test_events_no_rule_matches_are_kept_committed_and_create_no_sync(account, bindings, feed, oms, recorder):
    feed.add(feed_item("1-01", "invoiced"))
    cycle(account)
    assert FeedEvent.objects.get().routed_at is not None
    assert feed.committed and not OrderSync.objects.exists()


def test_status_rules_route_any_state_to_status_changed(account, bindings, feed, oms, recorder):
    RoutingRule.objects.create(account=account, state="cancellation-requested", action="status")
    oms.add("1-01", "cancellation-requested")
    feed.add(feed_item("1-01", "cancellation-requested"))
    cycle(account)
    assert recorder.count("rec_a", action="status:cancellation-requested") == 1
    assert OrderSync.objects.get(binding__adapter_key="rec_a").state == "cancellation-requested"


def test_sync_order_brings_an_order_in_by_id(account, bindings, oms, recorder):
    from io import StringIO

    oms.add("777-01")
    out = StringIO()
    call_command("sync_order", "teststore", "777-01", stdout=out)
    assert "stored and routed" in out.getvalue()
    assert recorder.count() == 2 and oms.start_handling_calls == {"777-01": 1}
    # VTEX now says 'handling': a new change, stored, routed to nothing.
    call_command("sync_order", "teststore", "777-01", stdout=StringIO())
    out = StringIO()
    call_command("sync_order", "teststore", "777-01", stdout=out)
    assert "already known" in out.getvalue()
    assert recorder.count() == 2 and oms.start_handling_calls == {"777-01": 1}


def test_rate_limit_on_get_order_postpones_without_spending_attempts(account, bindings, feed, vtex, recorder):
    vtex.get("https://teststore.vtexcommercestable.com.br/api/oms/pvt/orders/1-01", status=429, headers={"Retry-After": "30"})
    feed.add(feed_item("1-01"))
    cycle(account)
    sync = OrderSync.objects.filter(binding__adapter_key="rec_a").get()
    assert sync.attempts == 0 and sync.status == SyncStatus.PENDING
    assert 20 < (sync.next_attempt_at - timezone.now()).total_seconds() <= 31
