"""Which orders are the store's to fulfil: seller ids and event domains, in routing and in dispatch
(before any adapter and before start-handling); split orders of one orderGroup on the order page."""
import pytest
from django.urls import reverse

from integration.models import EventDomains, FeedEvent, Order, OrderSync, SyncStatus
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from tests.fake_feed import feed_item

pytestmark = pytest.mark.django_db


def cycle(account):
    summary = run_feed_cycle(account)
    assert summary.ok, summary.error
    return dispatch_due(budget=30)


def test_by_default_the_store_fulfils_seller_1_and_skips_another_sellers_order(account, bindings, feed, oms, recorder):
    assert (account.seller_ids, account.event_domains) == ("1", EventDomains.BOTH)
    oms.add("900-01", seller="1", orderGroup="900", sellers=[{"id": "1", "name": "Pet Store"}])
    oms.add("900-02", seller="SLR-7", orderGroup="900", sellers=[{"id": "SLR-7", "name": "Bowls Inc."}])
    feed.add(feed_item("900-01"), feed_item("900-02"))
    report = cycle(account)
    assert sorted(c[2] for c in recorder.calls) == ["900-01", "900-01"]
    assert report.skipped == 2
    assert set(oms.start_handling_calls) == {"900-01"}  # never start-handling another seller's order
    theirs = Order.objects.get(order_id="900-02")
    assert "Fulfilled by another seller" in theirs.outside_scope_reason and "SLR-7" in theirs.outside_scope_reason
    assert theirs.order_group == "900" and theirs.start_handling_state == "pending" and theirs.start_handling_due_at is None
    skipped = OrderSync.objects.filter(order=theirs)
    assert {s.status for s in skipped} == {SyncStatus.SKIPPED}
    assert all("SLR-7" in s.hold_reason for s in skipped)
    assert all(s.attempt_log.get().outcome == "skipped" for s in skipped)
    # A later event for that order routes no send at all.
    before = OrderSync.objects.count()
    feed.add(feed_item("900-02", change="2026-11-28T10:00:00Z"))
    cycle(account)
    assert OrderSync.objects.count() == before and recorder.count() == 2


def test_a_marketplace_store_that_fulfils_several_sellers(account, bindings, feed, oms, recorder):
    account.seller_ids = "1, SLR-7"
    account.save()
    oms.add("901-01", seller="SLR-7")
    oms.add("902-01", seller="SLR-8")
    feed.add(feed_item("901-01"), feed_item("902-01"))
    cycle(account)
    assert {c[2] for c in recorder.calls} == {"901-01"}


def test_an_order_naming_no_seller_is_the_stores(account, bindings, feed, oms, recorder):
    oms.add("904-01", seller="")
    feed.add(feed_item("904-01"))
    cycle(account)
    assert recorder.count() == 2


@pytest.mark.parametrize("domains,routed", [
    (EventDomains.BOTH, {"905-01", "906-01"}),
    (EventDomains.FULFILLMENT, {"905-01"}),
    (EventDomains.MARKETPLACE, {"906-01"}),
])
def test_event_domains_decide_which_events_route(account, bindings, feed, oms, recorder, domains, routed):
    account.event_domains = domains
    account.save()
    oms.add("905-01")
    oms.add("906-01")
    feed.add(dict(feed_item("905-01"), domain="Fulfillment"), dict(feed_item("906-01"), domain="marketplace"))
    cycle(account)
    assert {c[2] for c in recorder.calls} == routed
    # Every event is stored and committed all the same.
    assert FeedEvent.objects.count() == 2 and len(feed.committed) == 2


def test_the_order_page_shows_the_reason_and_the_split_orders_of_the_group(admin_client, account, bindings, feed, oms, recorder):
    oms.add("907-01", seller="1", orderGroup="907")
    oms.add("907-02", seller="SLR-7", orderGroup="907")
    feed.add(feed_item("907-01"), feed_item("907-02"))
    cycle(account)
    Order.objects.create(account=account, order_id="907-03")  # known, not fetched yet: matched by its id
    Order.objects.create(account=account, order_id="9070-01")  # another purchase
    theirs = Order.objects.get(order_id="907-02")
    html = admin_client.get(reverse("admin:integration_order_change", args=[theirs.pk])).content.decode()
    assert 'id="outside-scope"' in html and "Fulfilled by another seller" in html
    group = html.split('id="order-group"', 1)[1].split("</dd>", 1)[0]
    assert "907-01" in group and "907-03" in group and "9070-01" not in group and "907-02" not in group
    ours = Order.objects.get(order_id="907-01")
    html = admin_client.get(reverse("admin:integration_order_change", args=[ours.pk])).content.decode()
    assert 'id="outside-scope"' not in html
    assert "another seller's" in html.split('id="order-group"', 1)[1].split("</dd>", 1)[0]  # the sibling is marked
