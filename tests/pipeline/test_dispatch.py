"""Dispatch: every routed order delivered once per binding, failures isolated, holds and rate limits respected."""
import random

import pytest
from django.utils import timezone

from integration.models import (
    Account,
    AdapterBinding,
    AttemptOutcome,
    FeedEvent,
    Order,
    OrderSync,
    StartHandlingState,
    SyncAttempt,
    SyncStatus,
)
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.plugins.contract import PermanentError
from tests.fake_feed import feed_item
from tests.pipeline.steps import cycle
from tests.shared_fixtures import make_hub_order, make_sync

pytestmark = pytest.mark.django_db


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


def test_a_permanent_error_fails_at_once(account, bindings, feed, oms, recorder):
    recorder.always["rec_a"] = PermanentError("ERP rejected the order: unknown SKU")
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    cycle(account)
    sync = OrderSync.objects.get(binding__adapter_key="rec_a")
    assert sync.status == SyncStatus.FAILED and sync.attempts == 1 and "unknown SKU" in sync.last_error


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


def test_rate_limit_on_get_order_postpones_without_spending_attempts(account, bindings, feed, vtex, recorder):
    vtex.get("https://teststore.vtexcommercestable.com.br/api/oms/pvt/orders/1-01", status=429, headers={"Retry-After": "30"})
    feed.add(feed_item("1-01"))
    cycle(account)
    sync = OrderSync.objects.filter(binding__adapter_key="rec_a").get()
    assert sync.attempts == 0 and sync.status == SyncStatus.PENDING
    assert 20 < (sync.next_attempt_at - timezone.now()).total_seconds() <= 31


# --- A dispatch task that ran out of its own store's work helps the others ---

def _two_stores_with_due_sends(make_account, vtex, per_store=1):
    from tests.fake_oms import FakeOms

    other = make_account(name="Other store", account_name="otherstore", app_key="vtexappkey-otherstore-ABCDEF",
                         api_base_url="https://otherstore.vtexcommercestable.com.br")
    due = {}
    for store in (Account.objects.get(account_name="teststore"), other):
        oms = FakeOms(vtex, base=store.base_url)
        binding = AdapterBinding.objects.create(account=store, adapter_key="rec_a", name="A")
        for n in range(per_store):
            order = make_hub_order(store, f"{store.pk}0{n}-01")
            oms.add(order.order_id)
            due[store.account_name] = make_sync(order, binding, SyncStatus.PENDING, next_attempt_at=timezone.now())
    return other, due


def test_a_store_dispatch_goes_on_with_another_store_s_due_work_when_its_own_is_done(account, vtex, recorder, make_account):
    other, due = _two_stores_with_due_sends(make_account, vtex)
    report = dispatch_due(budget=10, account_id=account.pk, then_any_store=True)
    assert report.orders == 2 and report.succeeded == 2
    assert {s.status for s in OrderSync.objects.filter(pk__in=[s.pk for s in due.values()])} == {SyncStatus.SUCCEEDED}


def test_a_store_dispatch_keeps_to_its_store_unless_asked(account, vtex, recorder, make_account):
    other, due = _two_stores_with_due_sends(make_account, vtex)
    report = dispatch_due(budget=10, account_id=account.pk)
    assert report.orders == 1
    due["otherstore"].refresh_from_db()
    assert due["otherstore"].status == SyncStatus.PENDING and not due["otherstore"].attempt_log.exists()


def test_a_dispatch_that_helps_takes_the_stores_with_a_backlog_in_turn(account, vtex, recorder, make_account, settings):
    settings.DISPATCH_BATCH_SIZE = 1  # a lot an order: the order of the lots is the order of the calls
    other, _ = _two_stores_with_due_sends(make_account, vtex, per_store=3)
    report = dispatch_due(budget=10, account_id=account.pk, then_any_store=True)
    assert report.orders == 6
    stores = [Order.objects.get(order_id=c[2]).account_id for c in recorder.calls]
    assert stores == [account.pk, other.pk] * 3  # both backlogs worked at once, not one after the other




def _stores_with_due_sends(make_account, vtex, counts, *, oms_class=None, due_in=None):
    """Stores named s0, s1, ... (in pk order) with counts[i] orders each, their sends due now (or
    due_in[i] seconds from now). Returns the stores."""
    from datetime import timedelta

    from tests.fake_oms import FakeOms

    stores = []
    for i, count in enumerate(counts):
        store = make_account(name=f"Store {i}", account_name=f"s{i}", app_key=f"vtexappkey-s{i}-ABCDEF",
                             api_base_url=f"https://s{i}.vtexcommercestable.com.br")
        oms = (oms_class or FakeOms)(vtex, base=store.base_url)
        binding = AdapterBinding.objects.create(account=store, adapter_key="rec_a", name="A")
        due = timezone.now() + timedelta(seconds=(due_in or [0] * len(counts))[i])
        for n in range(count):
            order = make_hub_order(store, f"{store.pk}0{n}-01")
            oms.add(order.order_id)
            make_sync(order, binding, SyncStatus.PENDING, next_attempt_at=due)
        stores.append(store)
    return stores


def _store_of_each_send(recorder):
    return [Order.objects.get(order_id=c[2]).account.account_name for c in recorder.calls]


def test_a_dispatch_that_helps_takes_first_the_stores_whose_caps_are_not_booked_ahead(vtex, recorder, make_account, settings, tmp_path):
    """Other workers' lots booked s1's get-order slots 1.5 s ahead: a lot of s1 would sleep most of
    a second on this worker. s0's lots go first; s1's when s0 has nothing left."""
    from integration import ratelimit

    settings.DISPATCH_BATCH_SIZE = 1
    settings.VAR_DIR = tmp_path
    s0, s1 = _stores_with_due_sends(make_account, vtex, [3, 3])
    _, reserve = ratelimit._home()
    reserve(s1.pk, "get_order", 0.1, 25)  # 2.5 s booked; a call would wait beyond the burst (1 s)
    report = dispatch_due(budget=10, account_id=s0.pk, then_any_store=True)
    assert report.orders == 6 and report.succeeded == 6
    assert _store_of_each_send(recorder) == ["s0"] * 3 + ["s1"] * 3  # in turn when neither is booked (above)


def test_a_store_whose_lot_came_up_empty_is_looked_for_again_within_a_second(vtex, recorder, make_account, settings):
    """s2's sends become due 0.3 s into the run, after the worker listed the stores with due work;
    s1's single order is done in the second lot, and its next lot comes up empty, which drops it
    from the list. The list is read again once it is a second old, not only after
    STORES_LISTED_FOR (5 s) or when it runs out: s2's orders go before s0's backlog is done."""
    import time

    from tests.fake_oms import FakeOms

    class SlowOms(FakeOms):  # VTEX answering get order in 0.2 s: s0's ten lots take two seconds or more
        def _get(self, request):
            time.sleep(0.2)
            return super()._get(request)

    settings.DISPATCH_BATCH_SIZE = 1
    s0, s1, s2 = _stores_with_due_sends(make_account, vtex, [10, 1, 2], oms_class=SlowOms, due_in=[0, 0, 0.3])
    report = dispatch_due(budget=20, account_id=s0.pk, then_any_store=True)
    assert report.orders == 13
    sent = _store_of_each_send(recorder)
    assert sent.count("s2") == 2 and sent[-1] == "s0", sent


# --- The lot's HTTP threads leave the database to the worker ---

def test_a_lot_s_threads_open_no_database_connection(account, vtex, recorder, make_account, settings):
    """The worker looks up each route's pause and cap before the phase; the threads, which make
    the HTTP calls, find the answers fresh. Looked up by a thread, each answer cost a connection
    opened and closed (on PostgreSQL, a server process started: ~30 a second in a 4-store burst)."""
    import threading

    from django.db.backends.signals import connection_created

    from integration.pipeline import route_caps, vtex_access

    settings.DISPATCH_CONCURRENCY = 4
    _, due = _two_stores_with_due_sends(make_account, vtex, per_store=6)
    for route in ("get_order", "start_handling"):  # as after a second of other work: stale, due for a lookup
        vtex_access._pause_checked[(account.pk, route)] = (0.0, None)
        route_caps._cached.pop((account.pk, route), None)
    opened_by = []
    main = threading.get_ident()

    def count(sender, connection, **kwargs):
        opened_by.append(threading.get_ident())

    connection_created.connect(count)
    try:
        report = dispatch_due(budget=10, account_id=account.pk)
    finally:
        connection_created.disconnect(count)
    assert report.orders == 6 and report.succeeded == 6 and report.start_handling
    assert [who for who in opened_by if who != main] == []
