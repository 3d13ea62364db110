"""Regression tests for what the fault scenarios found (fast, in-process; they run in every lane).

A worker that dies (SIGKILL, a lost machine) or loses its database mid-dispatch leaves rows half
done. The claims expire; these tests pin down that everything else it left is picked up by the
scheduled dispatcher (`dispatch_all_due`) and nothing stays stuck.
"""
from datetime import timedelta

import pytest
from django.utils import timezone

from integration import tasks
from integration.pipeline import recovery
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import (
    Account, AdapterBinding, AttemptOutcome, Order, OrderSync, StartHandlingState, SyncAttempt, SyncStatus,
)
from tests.fake_feed import feed_item

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inline_dispatch")]
DEAD = "dispatch-deadhost-4242-0badc0de"


@pytest.fixture
def binding(account, recorder):
    return AdapterBinding.objects.create(account=account, adapter_key="rec_a", name="A")


@pytest.fixture
def routed_order(account, binding, feed, oms):
    """One ready-for-handling order taken in and routed: one pending send sync."""
    oms.add("1001-01")
    feed.add(feed_item("1001-01"))
    run_feed_cycle(account)
    return Order.objects.get(order_id="1001-01")


def died_holding(order, **fields):
    """The order as a worker left it when it died holding the order's claim (now expired)."""
    Order.objects.filter(pk=order.pk).update(claimed_by=DEAD, claimed_until=timezone.now() - timedelta(seconds=1), **fields)


def test_a_worker_that_died_between_the_delivery_and_start_handling_eligibility_strands_nothing(routed_order, oms, recorder):
    # The delivery was recorded, then the worker died before refresh_eligibility: nothing of the
    # order is due any more, so before the fix no dispatcher ever looked at it again.
    OrderSync.objects.filter(order=routed_order).update(status=SyncStatus.SUCCEEDED, attempts=1, next_attempt_at=None)
    died_holding(routed_order)
    tasks.dispatch_all_due()
    routed_order.refresh_from_db()
    assert routed_order.start_handling_state == StartHandlingState.DONE
    assert oms.start_handling_calls == {"1001-01": 1}
    assert recorder.count("rec_a") == 0  # the delivery is not repeated
    assert routed_order.claimed_by == "" and routed_order.claimed_until is None


@pytest.mark.parametrize("first_call_took_effect", [True, False])
def test_a_start_handling_claimed_by_a_dead_worker_is_finished_and_takes_effect_once(routed_order, oms, first_call_took_effect):
    OrderSync.objects.filter(order=routed_order).update(status=SyncStatus.SUCCEEDED, attempts=1, next_attempt_at=None)
    died_holding(routed_order, start_handling_state=StartHandlingState.CLAIMED, start_handling_due_at=timezone.now(),
                 start_handling_attempts=1)
    if first_call_took_effect:  # VTEX got the call the dead worker made; its answer was lost
        oms.statuses["1001-01"] = "handling"
    tasks.dispatch_all_due()
    routed_order.refresh_from_db()
    if first_call_took_effect:
        assert routed_order.start_handling_state == StartHandlingState.CONFLICT
        assert "already taken effect" in routed_order.start_handling_record
    else:
        assert routed_order.start_handling_state == StartHandlingState.DONE
    assert oms.start_handling_calls == {"1001-01": 1}
    assert oms.statuses["1001-01"] == "handling"


def test_expired_claims_and_leases_of_dead_workers_are_cleared_live_ones_are_not(routed_order, account, recorder):
    OrderSync.objects.filter(order=routed_order).update(status=SyncStatus.SUCCEEDED, next_attempt_at=None)
    died_holding(routed_order, start_handling_state=StartHandlingState.DONE)  # its work was done, then it died
    live = Order.objects.create(account=account, order_id="2002-01", claimed_by="alive",
                                claimed_until=timezone.now() + timedelta(minutes=5))
    Account.objects.filter(pk=account.pk).update(lease_owner="feed-dead", lease_until=timezone.now() - timedelta(seconds=1))
    line = recovery.recover_stale_work()
    assert "recovered 1 claims, 1 leases" in line
    routed_order.refresh_from_db()
    live.refresh_from_db()
    account.refresh_from_db()
    assert (routed_order.claimed_by, routed_order.claimed_until) == ("", None)
    assert live.claimed_by == "alive"
    assert (account.lease_owner, account.lease_until) == ("", None)


def test_an_adapter_call_its_worker_never_finished_is_closed_in_the_history(routed_order, settings):
    sync = OrderSync.objects.get(order=routed_order)
    old = SyncAttempt.objects.create(sync=sync, number=1, worker=DEAD)
    recent = SyncAttempt.objects.create(sync=sync, number=1, worker="alive")
    SyncAttempt.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(seconds=settings.SYNC_CLAIM_TTL + 5))
    recovery.recover_stale_work()
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.outcome == AttemptOutcome.TRANSIENT and "worker stopped during this call" in old.error
    assert recent.outcome == AttemptOutcome.RUNNING


def test_intake_stores_and_commits_when_the_redis_broker_is_down(account, binding, feed, oms, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    # With Redis down, asking for a dispatch raised after the batch was stored and before its
    # handles were committed: the feed cycle failed and VTEX redelivered the whole batch.
    tried = []

    def down(func, *args, **kwargs):
        tried.append(func)
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("django_q.tasks.async_task", down)
    for n in range(3):
        oms.add(f"300{n}-01")
        feed.add(feed_item(f"300{n}-01"))
    with django_capture_on_commit_callbacks(execute=True):
        summary = run_feed_cycle(account)
    assert summary.ok, summary.error
    assert len(feed.committed) == 3
    assert tried == ["integration.tasks.dispatch"]
