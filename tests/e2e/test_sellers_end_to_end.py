"""Marketplaces, sellers and FromOrders filters, end to end: the hub against the sandbox over real
HTTP (feed, get order, start-handling) into a webhook ERP (the loopback ERP).

- A marketplace store receives its own orders (sold by seller 1: plain, from an external
  marketplace, the first part of a split purchase) and skips the ones its third-party sellers fulfil
  (`SLR-…` orders, the second part of a split), with the reason on the order page.
- A FromOrders store with `value > 50000` (VTEX's `value` is in cents: R$ 500) sends exactly the
  orders above it, once each: the sandbox evaluates the expression with JSONata and fires once per
  order (single fire), before the order is ready-for-handling; the hub waits for that state.
"""
import time
from collections import Counter

import pytest
from django.urls import reverse

from integration.models import (
    AdapterBinding, FeedConfiguration, FeedEvent, Order, OrderSync, RoutingRule, RuleAction, StartHandlingState, SyncStatus,
)
from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from tests.shared_fixtures import APP_KEY, APP_TOKEN

THRESHOLD = 50000


def bind_erp(account, erp):
    binding = AdapterBinding(account=account, adapter_key="webhook", name="ERP")
    binding.apply_settings({"url": erp.url + "/orders", "signing_secret": "e2e-sellers-signing-secret"})
    binding.save()
    return binding


def sent_order_ids(erp):
    keys = Counter(r["headers"].get("Idempotency-Key") for r in erp.received if r["path"] == "/orders")
    return Counter(key.split(":")[2] for key in keys if key and ":send" in key)


def run_until(account, sandbox, done, seconds=90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run_feed_cycle(account, budget=10)
        dispatch_due(budget=20)
        pending = OrderSync.objects.filter(status=SyncStatus.PENDING).exists()
        if done() and sandbox.stats()["feed_depth"] == 0 and not pending:
            return
        time.sleep(0.3)
    raise AssertionError("the hub did not finish in time")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_marketplace_store_fulfils_its_own_orders_and_skips_its_sellers(sandbox, sandbox_store, erp, admin_client):
    bind_erp(sandbox_store, erp)
    own = sandbox.create_orders(APP_KEY, 3) + sandbox.create_orders(APP_KEY, 2, kind="marketplace")
    sellers = sandbox.create_orders(APP_KEY, 2, kind="seller", seller_id="acmeseller", seller_name="ACME")
    first, second = sandbox.create_orders(APP_KEY, 1, kind="split", seller_id="acmeseller")
    own.append(first)
    sellers.append(second)
    stats = sandbox.stats

    run_until(sandbox_store, sandbox, lambda: all(stats()["statuses"][oid] == "handling" for oid in own))

    assert sent_order_ids(erp) == Counter({oid: 1 for oid in own})  # once each, and none of the sellers'
    assert stats()["start_handling_ok"] == {oid: 1 for oid in own}
    assert {stats()["statuses"][oid] for oid in sellers} == {"ready-for-handling"}  # left to their sellers
    assert stats()["feed_depth"] == 0 and FeedEvent.objects.filter(committed_at__isnull=True, handle__gt="").count() == 0
    assert set(FeedEvent.objects.filter(order_id__in=sellers).values_list("domain", flat=True)) == {"Marketplace"}
    for oid in sellers:
        order = Order.objects.get(account=sandbox_store, order_id=oid)
        assert order.outside_scope_reason.startswith("Fulfilled by another seller: its items are sold by seller acmeseller")
        assert order.start_handling_state != StartHandlingState.DONE
        assert set(order.syncs.values_list("status", flat=True)) == {SyncStatus.SKIPPED}
    split_two = Order.objects.get(account=sandbox_store, order_id=second)
    assert split_two.order_group == first[:-3] == Order.objects.get(order_id=first).order_group
    page = admin_client.get(reverse("admin:integration_order_change", args=[split_two.pk])).content.decode()
    assert 'id="outside-scope"' in page and "Fulfilled by another seller" in page
    assert first in page  # the purchase's other order, listed with it


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_from_orders_store_sends_exactly_the_orders_its_expression_matches_once_each(serve_sandbox, erp, settings):
    settings.READY_WAIT_SCHEDULE = [1]  # re-read a waiting order every second, not after a minute
    expression = f"value > {THRESHOLD}"
    sandbox = serve_sandbox("fromorders", APP_KEY, APP_TOKEN, seed=19, feed_config={
        "filter": {"type": "FromOrders", "expression": expression, "disableSingleFire": False},
        "queue": {"visibilityTimeoutInSeconds": 2, "messageRetentionPeriodInSeconds": 345600}})
    from integration.models import Account

    store = Account(name="FromOrders", account_name="fromorders", app_key=APP_KEY, api_base_url=sandbox.url)
    store.app_token = APP_TOKEN
    store.save()
    FeedConfiguration.objects.filter(account=store).update(filter_type="FromOrders", statuses=[], expression=expression)
    RoutingRule.objects.filter(account=store).delete()
    RoutingRule.objects.create(account=store, state="*", action=RuleAction.SEND_WHEN_READY)
    bind_erp(store, erp)

    # Not ready yet: the expression matches at order-created, the single event arrives long before
    # ready-for-handling, and no later event comes (single fire).
    ids = sandbox.create_orders(APP_KEY, 12, status="payment-pending")
    above = {oid for oid in ids if sandbox.order(APP_KEY, oid)["value"] > THRESHOLD}
    assert above and above != set(ids)
    for _ in range(3):
        run_feed_cycle(store, budget=10)
        dispatch_due(budget=20)
    assert sent_order_ids(erp) == Counter()  # waiting for ready-for-handling
    for oid in ids:
        sandbox.set_status(APP_KEY, oid, "payment-approved")
        sandbox.set_status(APP_KEY, oid, "ready-for-handling")

    stats = sandbox.stats
    run_until(store, sandbox, lambda: all(stats()["statuses"][oid] == "handling" for oid in above))
    time.sleep(1.2)  # one more wait period: nothing else may go out
    run_feed_cycle(store, budget=10)
    dispatch_due(budget=20)

    assert sent_order_ids(erp) == Counter({oid: 1 for oid in above})
    assert stats()["start_handling_ok"] == {oid: 1 for oid in above}
    assert {stats()["statuses"][oid] for oid in set(ids) - above} == {"ready-for-handling"}
    events = FeedEvent.objects.filter(account=store)
    assert sorted(events.values_list("order_id", flat=True)) == sorted(above)  # one event per order: single fire
    assert set(events.values_list("state", flat=True)) == {"order-created"}
    assert not Order.objects.filter(account=store, order_id__in=set(ids) - above).exists()
