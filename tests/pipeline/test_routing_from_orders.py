"""FromOrders routing: an event means "the expression matched". A rule "* → send once
ready-for-handling" sends the order when VTEX says ready-for-handling, and otherwise waits (pending,
re-reading the order on a bounded schedule) and sends it then, with no later event."""
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from integration.operations import syncs as operations
from integration.models import ANY_STATE, FeedConfiguration, Order, OrderSync, RoutingRule, RuleAction, SyncStatus
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from tests.fake_feed import feed_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def from_orders_store(account, settings):
    settings.READY_WAIT_SCHEDULE = [60, 600]
    settings.READY_WAIT_MAX_CHECKS = 4
    FeedConfiguration.objects.filter(account=account).update(filter_type="FromOrders", statuses=[], expression="value > 100")
    account.rules.all().delete()
    RoutingRule.objects.create(account=account, state=ANY_STATE, action=RuleAction.SEND_WHEN_READY)
    RoutingRule.objects.create(account=account, state="canceled", action=RuleAction.CANCEL)
    return account


def cycle(account):
    summary = run_feed_cycle(account)
    assert summary.ok, summary.error
    return dispatch_due(budget=30)


def time_passes():
    OrderSync.objects.filter(status=SyncStatus.PENDING).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def seconds_until_next(sync):
    return (sync.next_attempt_at - timezone.now()).total_seconds()


def test_matched_before_ready_waits_then_sends_once_without_another_event(from_orders_store, bindings, feed, oms, recorder):
    oms.add("500-01", "payment-pending")
    feed.add(feed_item("500-01", "payment-pending", last_state="order-created"))  # value > 100 matched here
    report = cycle(from_orders_store)
    assert recorder.count() == 0 and report.waiting == 2 and report.held == 0
    syncs = list(OrderSync.objects.filter(action="send"))
    assert len(syncs) == 2
    for sync in syncs:
        assert sync.status == SyncStatus.PENDING and sync.wait_for_ready and sync.ready_checks == 1 and sync.attempts == 0
        assert "Waiting for VTEX to say ready-for-handling (it says 'payment-pending'): check 1 of at most 4" in sync.hold_reason
        assert 50 < seconds_until_next(sync) <= 60
    assert dispatch_due(budget=30).orders == 0  # not due yet: nothing spins
    # Still not ready at the next check: the wait grows along the schedule.
    oms.statuses["500-01"] = "payment-approved"
    time_passes()
    assert dispatch_due(budget=30).waiting == 2
    sync = OrderSync.objects.get(pk=syncs[0].pk)
    assert sync.ready_checks == 2 and 590 < seconds_until_next(sync) <= 600 and "'payment-approved'" in sync.hold_reason
    # VTEX says ready-for-handling: sent at the next check, once per adapter, then start-handling once.
    oms.statuses["500-01"] = "ready-for-handling"
    time_passes()
    report = dispatch_due(budget=30)
    assert report.succeeded == 2 and recorder.count() == 2
    assert oms.start_handling_calls == {"500-01": 1}
    assert {s.status for s in OrderSync.objects.filter(action="send")} == {SyncStatus.SUCCEEDED}
    assert all(s.hold_reason == "" for s in OrderSync.objects.filter(action="send"))
    assert len(feed.committed) == 1  # one event, committed at once


def test_matched_when_ready_sends_at_once(from_orders_store, bindings, feed, oms, recorder):
    oms.add("501-01")
    feed.add(feed_item("501-01", "ready-for-handling"))
    report = cycle(from_orders_store)
    assert report.succeeded == 2 and report.waiting == 0 and oms.start_handling_calls == {"501-01": 1}


def test_the_wait_is_bounded_then_held_for_the_operator_and_a_retry_waits_again(from_orders_store, bindings, feed, oms, recorder):
    oms.add("502-01", "payment-pending")
    feed.add(feed_item("502-01", "payment-pending"))
    cycle(from_orders_store)
    for _ in range(3):
        time_passes()
        dispatch_due(budget=30)
    assert set(OrderSync.objects.values_list("ready_checks", flat=True)) == {4}
    time_passes()
    assert dispatch_due(budget=30).held == 2
    held = OrderSync.objects.filter(action="send")
    assert {s.status for s in held} == {SyncStatus.HELD}
    assert all("through 4 checks; VTEX still says 'payment-pending'" in s.hold_reason for s in held)
    assert recorder.count() == 0
    operations.retry_syncs(held)
    assert set(OrderSync.objects.values_list("status", "ready_checks")) == {(SyncStatus.PENDING, 0)}
    assert dispatch_due(budget=30).waiting == 2


def test_canceled_while_waiting_is_skipped(from_orders_store, bindings, feed, oms, recorder):
    oms.add("503-01", "payment-pending")
    feed.add(feed_item("503-01", "payment-pending"))
    cycle(from_orders_store)
    oms.statuses["503-01"] = "canceled"
    time_passes()
    assert dispatch_due(budget=30).skipped == 2
    assert recorder.count() == 0 and oms.start_handling_calls == {}


def test_an_order_already_past_ready_is_held_at_once(from_orders_store, bindings, feed, oms, recorder):
    oms.add("504-01", "invoiced")
    feed.add(feed_item("504-01", "invoiced"))
    report = cycle(from_orders_store)
    assert report.held == 2 and report.waiting == 0 and recorder.count() == 0


def test_a_plain_send_rule_still_holds_when_not_ready(account, bindings, feed, oms, recorder):
    oms.add("505-01", "handling")
    feed.add(feed_item("505-01", "ready-for-handling"))
    report = cycle(account)
    assert report.held == 2 and not OrderSync.objects.filter(wait_for_ready=True).exists()


def test_the_any_state_rule_goes_with_send_once_ready_or_status(account):
    RoutingRule(account=account, state=ANY_STATE, action=RuleAction.SEND_WHEN_READY).full_clean()
    RoutingRule(account=account, state=ANY_STATE, action=RuleAction.STATUS).full_clean()
    RoutingRule(account=account, state="payment-approved", action=RuleAction.SEND_WHEN_READY).full_clean()
    for action in (RuleAction.SEND, RuleAction.CANCEL):
        with pytest.raises(ValidationError) as info:
            RoutingRule(account=account, state=ANY_STATE, action=action).full_clean()
        assert "Send once ready-for-handling" in info.value.message_dict["state"][0]


def test_the_order_page_shows_the_wait(admin_client, from_orders_store, bindings, feed, oms, recorder):
    oms.add("506-01", "payment-pending")
    feed.add(feed_item("506-01", "payment-pending"))
    cycle(from_orders_store)
    order = Order.objects.get(order_id="506-01")
    html = admin_client.get(reverse("admin:integration_order_change", args=[order.pk])).content.decode()
    assert "Waiting because" in html and "Waiting for VTEX to say ready-for-handling" in html and "Next attempt" in html


def test_an_any_state_rule_is_never_warned_about_as_outside_the_feed_filter(account):
    from integration.operations import feed_configuration as store_operations

    RoutingRule.objects.create(account=account, state=ANY_STATE, action=RuleAction.SEND_WHEN_READY)
    assert store_operations.rules_outside_feed(account) == []
