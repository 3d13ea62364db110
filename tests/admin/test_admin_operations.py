"""The service functions behind the admin's actions, called directly."""
from datetime import timedelta

import pytest
import responses
from django.db.models.functions import Now
from django.utils import timezone

from integration.operations import syncs as sync_ops
from integration.pipeline.dispatch import dispatch_due
from integration.models import (
    EventSource, FeedEvent, Order, OrderSync, StartHandlingState, SyncAttempt, SyncStatus,
)
from integration.vtex.errors import NotFound
from tests.shared_fixtures import make_binding, make_hub_order, make_sync
from tests.fake_oms import FakeOms

pytestmark = pytest.mark.django_db


def db_now():
    return Order.objects.annotate(now=Now()).values_list("now", flat=True).first() or timezone.now()


def test_retry_now_makes_failed_held_and_pending_syncs_due_now_with_a_fresh_count(account, make_account, binding, enqueued):
    other_store = make_account(name="Other", account_name="other", app_key="vtexappkey-other-XYZ")
    other_binding = make_binding(other_store)
    failed = make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.FAILED, attempts=8, error="ERP answered 500")
    held = make_sync(make_hub_order(account, "2-01"), binding, SyncStatus.HELD)
    pending = make_sync(make_hub_order(other_store, "3-01"), other_binding, SyncStatus.PENDING, attempts=2, error="timeout")
    done = make_sync(make_hub_order(account, "4-01"), binding, SyncStatus.SUCCEEDED, erp_reference="ERP-4")
    abandoned = make_sync(make_hub_order(account, "5-01"), binding, SyncStatus.ABANDONED)

    outcome = sync_ops.retry_syncs(OrderSync.objects.all())

    assert (outcome.changed, outcome.left_alone, outcome.stores) == (3, 2, sorted([account.pk, other_store.pk]))
    assert outcome.message == "Retrying now: 3 syncs in 2 stores. 2 syncs left alone (not failed, held or pending)."
    now = db_now()
    for sync in (failed, held, pending):
        sync.refresh_from_db()
        assert sync.status == SyncStatus.PENDING and sync.attempts == 0
        assert now - timedelta(seconds=5) <= sync.next_attempt_at <= now
    assert failed.last_error == "ERP answered 500"          # kept until the next attempt replaces it
    assert pending.last_error == "timeout"
    done.refresh_from_db()
    abandoned.refresh_from_db()
    assert done.status == SyncStatus.SUCCEEDED and abandoned.status == SyncStatus.ABANDONED
    assert sorted(enqueued) == sorted([account.pk, other_store.pk])


def test_retry_matching_staggers_due_times_at_the_configured_rate(account, binding, enqueued, settings):
    settings.RETRY_ALL_PER_MINUTE = 60  # one a second
    syncs = [make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.FAILED) for n in range(25)]
    make_sync(make_hub_order(account, "99-01"), binding, SyncStatus.SUCCEEDED)

    before = db_now()
    outcome = sync_ops.retry_matching(OrderSync.objects.all())

    assert outcome.changed == 25 and enqueued == [account.pk]
    assert "Released at 60 a minute" in outcome.message
    due = [OrderSync.objects.get(pk=s.pk).next_attempt_at for s in syncs]  # oldest first
    assert before - timedelta(seconds=5) <= due[0] <= before + timedelta(seconds=5)
    for k in range(1, 25):
        assert due[k] - due[0] == timedelta(seconds=k)       # the k-th sync at now + k / rate minutes
    assert {s.status for s in OrderSync.objects.filter(pk__in=[s.pk for s in syncs])} == {SyncStatus.PENDING}
    assert set(OrderSync.objects.filter(pk__in=[s.pk for s in syncs]).values_list("attempts", flat=True)) == {0}


def test_retry_matching_at_the_default_rate_releases_ten_a_second(account, binding, enqueued):
    syncs = [make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.FAILED) for n in range(35)]
    sync_ops.retry_matching(OrderSync.objects.filter(status=SyncStatus.FAILED))
    due = [OrderSync.objects.get(pk=s.pk).next_attempt_at for s in syncs]
    offsets = [(d - due[0]).total_seconds() for d in due]
    assert offsets == [k // 10 for k in range(35)]            # 600 a minute: ten share each second


def test_retry_matching_bounds_the_number_of_updates(account, binding, enqueued, django_assert_max_num_queries, monkeypatch):
    monkeypatch.setattr(sync_ops, "MAX_STAGGER_STEPS", 5)
    for n in range(40):
        make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.FAILED)
    with django_assert_max_num_queries(12):
        outcome = sync_ops.retry_matching(OrderSync.objects.all(), per_minute=6000)
    assert outcome.changed == 40


def test_resolve_delivered_by_hand_counts_as_delivered_and_makes_start_handling_due(account, binding, admin_user, enqueued):
    second = make_binding(account, name="WMS")
    order = make_hub_order(account, "1-01")
    failed = make_sync(order, binding, SyncStatus.FAILED)
    held = make_sync(order, second, SyncStatus.HELD)

    outcome = sync_ops.resolve_delivered_by_hand(OrderSync.objects.filter(pk=failed.pk), admin_user)
    assert outcome.changed == 1 and "Start-handling is now due" not in outcome.message
    order.refresh_from_db()
    assert order.start_handling_due_at is None               # the WMS send is still held

    outcome = sync_ops.resolve_delivered_by_hand(OrderSync.objects.filter(pk=held.pk), admin_user)
    assert outcome.message == ("Resolved as delivered by hand: 1 sync in 1 store. "
                                 "Start-handling is now due for 1 order.")
    for sync in (failed, held):
        sync.refresh_from_db()
        assert sync.status == SyncStatus.DELIVERED_BY_HAND
        assert sync.resolved_by == admin_user and sync.resolved_at is not None and sync.next_attempt_at is None
    order.refresh_from_db()
    assert order.start_handling_state == StartHandlingState.PENDING and order.start_handling_due_at is not None
    assert enqueued == [account.pk, account.pk]


def test_abandon_is_not_delivered_and_never_makes_start_handling_due(account, binding, admin_user, enqueued):
    order = make_hub_order(account, "1-01")
    sync = make_sync(order, binding, SyncStatus.FAILED)
    done = make_sync(make_hub_order(account, "2-01"), binding, SyncStatus.SUCCEEDED)
    outcome = sync_ops.abandon_syncs(OrderSync.objects.all(), admin_user)
    assert (outcome.changed, outcome.left_alone) == (1, 1)
    sync.refresh_from_db()
    done.refresh_from_db()
    assert sync.status == SyncStatus.ABANDONED and sync.resolved_by == admin_user and sync.resolved_at
    assert done.status == SyncStatus.SUCCEEDED and done.resolved_by is None
    order.refresh_from_db()
    assert order.start_handling_due_at is None


def test_retry_start_handling_only_where_every_gating_send_is_delivered(account, binding, enqueued):
    def order_with(order_id, state, sync_status=SyncStatus.SUCCEEDED, **kw):
        order = make_hub_order(account, order_id, start_handling_state=state, start_handling_attempts=8,
                               start_handling_record="VTEX answered 500", **kw)
        make_sync(order, binding, sync_status)
        return order

    failed = order_with("1-01", StartHandlingState.FAILED)
    conflict = order_with("2-01", StartHandlingState.CONFLICT, SyncStatus.DELIVERED_BY_HAND)
    waiting = order_with("3-01", StartHandlingState.PENDING, SyncStatus.FAILED)      # a gating send not delivered
    done = order_with("4-01", StartHandlingState.DONE)
    canceled = order_with("5-01", StartHandlingState.FAILED, canceled=True)

    outcome = sync_ops.retry_start_handling(Order.objects.all())

    assert (outcome.changed, outcome.left_alone) == (2, 1)
    assert "2 orders not retried" in outcome.message
    now = db_now()
    for order in (failed, conflict):
        order.refresh_from_db()
        assert order.start_handling_state == StartHandlingState.PENDING and order.start_handling_attempts == 0
        assert now - timedelta(seconds=5) <= order.start_handling_due_at <= now
        assert order.start_handling_record == "VTEX answered 500"
    for order, state in ((waiting, StartHandlingState.PENDING), (done, StartHandlingState.DONE), (canceled, StartHandlingState.FAILED)):
        order.refresh_from_db()
        assert order.start_handling_state == state and order.start_handling_due_at is None and order.start_handling_attempts == 8
    assert enqueued == [account.pk]


def test_sync_order_now_brings_in_an_unknown_order_and_asks_for_dispatch(account, binding, vtex, enqueued):
    oms = FakeOms(vtex)
    oms.add("777-01")
    result = sync_ops.sync_order_now(account, " 777-01 ")
    assert result.data["new_events"] == 1 and result.data["order"].order_id == "777-01"
    assert "stored as a new event and routed" in result.message
    event = FeedEvent.objects.get(order_id="777-01")
    assert event.source == EventSource.SYNC_ORDER and event.state == "ready-for-handling"
    assert OrderSync.objects.filter(order__order_id="777-01", binding=binding, status=SyncStatus.PENDING).count() == 1
    assert enqueued == [account.pk]
    again = sync_ops.sync_order_now(account, "777-01")
    assert again.data["new_events"] == 0 and "already had" in again.message


def test_sync_order_now_lets_the_vtex_error_through(account, vtex, enqueued):
    FakeOms(vtex)
    with pytest.raises(NotFound):
        sync_ops.sync_order_now(account, "404-01")
    assert enqueued == [] and not Order.objects.exists()


def test_a_failed_sync_retried_then_dispatched_is_delivered_and_start_handling_done(account, binding, vtex, enqueued, settings):
    settings.DISPATCH_CONCURRENCY = 1
    oms = FakeOms(vtex)
    oms.add("1-01")
    order = make_hub_order(account, "1-01")
    sync = make_sync(order, binding, SyncStatus.FAILED, attempts=8)
    vtex.add(responses.POST, "https://erp.example.com/orders", json={"id": "ERP-42"})

    sync_ops.retry_syncs(OrderSync.objects.filter(pk=sync.pk))
    dispatch_due(budget=10)

    sync.refresh_from_db()
    order.refresh_from_db()
    assert sync.status == SyncStatus.SUCCEEDED and sync.attempts == 1 and sync.erp_reference == "ERP-42"
    assert sync.last_error == ""
    assert SyncAttempt.objects.filter(sync=sync).order_by("-id").first().outcome == "succeeded"
    assert order.start_handling_state == StartHandlingState.DONE and oms.start_handling_calls == {"1-01": 1}
