"""How events become work: which rule routes an event to send, cancel or status, and what never ships."""

import pytest

from integration.models import (
    FeedEvent,
    OrderSync,
    RoutingRule,
    SyncStatus,
)
from tests.fake_feed import feed_item
from tests.pipeline.steps import cycle

pytestmark = pytest.mark.django_db


def test_ready_for_handling_after_canceled_never_ships(account, bindings, feed, oms, recorder):
    oms.add("1-01", "canceled")
    feed.add(feed_item("1-01", "canceled", change="2026-11-27T11:00:00Z"))
    cycle(account)
    feed.add(feed_item("1-01", "ready-for-handling", change="2026-11-27T10:00:00Z"))
    cycle(account)
    assert recorder.count() == 0
    assert not OrderSync.objects.filter(action="send").exists()
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
