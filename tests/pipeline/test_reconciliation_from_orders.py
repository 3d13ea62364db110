"""Reconciliation keeps to a FromOrders store's expression: it brings in only the orders VTEX's
feed would have delivered (the expression is true for them), against the sandbox over HTTP."""
from datetime import timedelta

import pytest
from django.utils import timezone

from integration.models import AdapterBinding, EventSource, FeedConfiguration, FeedEvent, RoutingRule, RuleAction
from integration.pipeline import reconciliation
from integration.pipeline.dispatch import dispatch_due
from tests.shared_fixtures import APP_KEY

THRESHOLD = 50000  # cents: R$ 500 (VTEX's `value` is in cents)


def reconcile(account):
    # The list's window ends at whole seconds: look from a moment after the orders were made.
    return reconciliation.reconcile_account(account, now=timezone.now() + timedelta(seconds=2))


@pytest.fixture
def from_orders_store(sandbox_store, settings, erp):
    settings.RECONCILE_MIN_AGE_SECONDS = 0  # the sandbox's list has no index lag
    FeedConfiguration.objects.filter(account=sandbox_store).update(
        filter_type="FromOrders", statuses=[], expression=f"value > {THRESHOLD}")
    RoutingRule.objects.filter(account=sandbox_store).delete()
    RoutingRule.objects.create(account=sandbox_store, state="*", action=RuleAction.SEND_WHEN_READY)
    binding = AdapterBinding(account=sandbox_store, adapter_key="webhook", name="ERP")
    binding.apply_settings({"url": erp.url + "/orders", "signing_secret": "reconcile-signing-secret"})
    binding.save()
    return sandbox_store


@pytest.mark.django_db(transaction=True)
def test_reconciliation_brings_in_only_orders_the_expression_is_true_for(sandbox, from_orders_store, erp):
    ids = sandbox.create_orders(APP_KEY, 10)   # the hub never polls the feed: every one is "lost"
    values = {oid: sandbox.order(APP_KEY, oid)["value"] for oid in ids}
    above = sorted(oid for oid, value in values.items() if value > THRESHOLD)
    below = sorted(oid for oid in ids if oid not in above)
    assert above and below

    report = reconcile(from_orders_store)
    assert report.error == "" and report.listed == 10
    assert sorted(report.brought_in) == above and sorted(report.not_matching) == below and report.unchecked == {}
    assert set(FeedEvent.objects.filter(source=EventSource.RECONCILE).values_list("order_id", flat=True)) == set(above)
    from_orders_store.refresh_from_db()
    assert from_orders_store.last_reconcile_report["not_matching"] == report.not_matching
    assert "left 5 out" not in report.line() and f"left {len(below)} out" in report.line()

    dispatch_due(budget=50)
    sent = sorted(r["headers"]["Idempotency-Key"].split(":")[2] for r in erp.received if r["path"] == "/orders")
    assert sent == above  # and nothing the expression is false for

    again = reconcile(from_orders_store)
    assert again.brought_in == [] and sorted(again.not_matching) == below


@pytest.mark.django_db(transaction=True)
def test_an_order_with_an_earlier_event_counts_as_known(sandbox, from_orders_store):
    """Single fire: the expression matched at order-created, so the hub's only event for the order
    is that one; reconciliation must not bring the order in a second time."""
    order_id = next(oid for oid in sandbox.create_orders(APP_KEY, 6) if sandbox.order(APP_KEY, oid)["value"] > THRESHOLD)
    FeedEvent.objects.create(account=from_orders_store, change_key="earlier", order_id=order_id, state="order-created")
    report = reconcile(from_orders_store)
    assert order_id not in report.brought_in and order_id not in report.not_matching


@pytest.mark.django_db(transaction=True)
def test_an_expression_that_cannot_be_evaluated_brings_nothing_in_and_says_so(sandbox, from_orders_store):
    FeedConfiguration.objects.filter(account=from_orders_store).update(expression='$error("no")')
    ids = sandbox.create_orders(APP_KEY, 2)
    report = reconcile(from_orders_store)
    assert report.brought_in == [] and sorted(report.unchecked) == sorted(ids)
    assert "2 unchecked" in report.line()


@pytest.mark.django_db(transaction=True)
def test_a_from_workflow_store_still_brings_in_every_lost_order(sandbox, sandbox_store, settings):
    settings.RECONCILE_MIN_AGE_SECONDS = 0
    ids = sandbox.create_orders(APP_KEY, 4)
    report = reconcile(sandbox_store)
    assert sorted(report.brought_in) == sorted(ids) and report.expression == "" and report.not_matching == []
