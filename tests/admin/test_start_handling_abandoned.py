"""An order whose gating sync was abandoned: start-handling will not happen, says so, and can be called anyway."""
import importlib
from datetime import timedelta

import pytest
from django.apps import apps as global_apps
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from integration.models import Order, OrderSync, StartHandlingState, SyncStatus
from integration.operations import syncs as sync_ops
from integration.pipeline.dispatch import dispatch_due
from tests.shared_fixtures import make_binding, make_hub_order, make_sync
from tests.admin.test_admin_actions import run_action
from tests.fake_oms import FakeOms

pytestmark = pytest.mark.django_db


def db_now():
    return Order.objects.annotate(now=Now()).values_list("now", flat=True).first() or timezone.now()


def test_abandoning_a_gating_sync_means_start_handling_will_not_happen(account, binding, admin_user, enqueued):
    order = make_hub_order(account, "1-01")
    gating = make_sync(order, binding, SyncStatus.FAILED)
    crm = make_binding(account, name="CRM", gates=False)
    other = make_hub_order(account, "2-01")
    make_sync(other, binding, SyncStatus.SUCCEEDED)
    not_gating = make_sync(other, crm, SyncStatus.FAILED)

    outcome = sync_ops.abandon_syncs(OrderSync.objects.filter(pk__in=[gating.pk, not_gating.pk]), admin_user)

    assert outcome.changed == 2
    assert "Start-handling will not be called for 1 order" in outcome.message
    order.refresh_from_db()
    assert order.start_handling_state == StartHandlingState.ABANDONED and order.start_handling_due_at is None
    assert order.start_handling_decided_by == admin_user
    assert "abandoned by admin" in order.start_handling_record and "Start handling anyway" in order.start_handling_record
    other.refresh_from_db()  # a non-gating adapter abandoned: start-handling still follows the gating one
    assert other.start_handling_state == StartHandlingState.PENDING and other.start_handling_decided_by is None
    assert enqueued == []


def test_an_order_already_past_start_handling_is_left_alone(account, binding, admin_user):
    order = make_hub_order(account, "1-01", start_handling_state=StartHandlingState.DONE, start_handling_record="VTEX answered 204")
    make_sync(order, binding, SyncStatus.SUCCEEDED)
    resend = make_sync(order, binding, SyncStatus.FAILED, action="send", state="resend")
    sync_ops.abandon_syncs(OrderSync.objects.filter(pk=resend.pk), admin_user)
    order.refresh_from_db()
    assert order.start_handling_state == StartHandlingState.DONE and order.start_handling_decided_by is None


def test_metrics_count_it_in_its_own_state_not_as_pending(client, account, binding, admin_user):
    make_hub_order(account, "2-01")  # really pending
    order = make_hub_order(account, "1-01")
    sync_ops.abandon_syncs(OrderSync.objects.filter(pk=make_sync(order, binding, SyncStatus.FAILED).pk), admin_user)
    text = client.get("/metrics").content.decode()
    assert 'vtexhub_start_handling{state="abandoned"} 1' in text
    assert 'vtexhub_start_handling{state="pending"} 1' in text


def test_the_order_page_says_what_will_happen_and_calls_it_anyway(admin_client, admin_user, account, binding, vtex, enqueued, settings):
    settings.DISPATCH_CONCURRENCY = 1
    oms = FakeOms(vtex)
    oms.add("1-01")
    order = make_hub_order(account, "1-01")
    sync = make_sync(order, binding, SyncStatus.FAILED)
    page_url = reverse("admin:integration_order_change", args=[order.pk])
    operate = reverse("admin:integration_order_operate", args=[order.pk])
    admin_client.post(operate, {"op": "abandon_sync", "sync": sync.pk})

    html = admin_client.get(page_url).content.decode()
    assert "Start-handling will not be called for this order: a gating sync was abandoned by admin" in html
    assert 'id="start-handling-decided-by">admin<' in html
    assert "Not going to happen" in html and "waits until every gating adapter" not in html
    assert 'value="start_handling_anyway"' in html and 'value="retry_start_handling"' not in html

    response = admin_client.post(operate, {"op": "start_handling_anyway"}, follow=True)
    assert "Start-handling due now, called anyway: 1 order in 1 store." in str(list(response.context["messages"])[-1])
    order.refresh_from_db()
    assert order.start_handling_state == StartHandlingState.PENDING and order.start_handling_attempts == 0
    assert db_now() - timedelta(seconds=5) <= order.start_handling_due_at <= db_now()
    assert order.start_handling_decided_by == admin_user and "Called anyway by admin" in order.start_handling_record
    assert enqueued == [account.pk]

    dispatch_due(budget=10)
    order.refresh_from_db()
    assert order.start_handling_state == StartHandlingState.DONE and oms.start_handling_calls == {"1-01": 1}
    html = admin_client.get(page_url).content.decode()
    assert 'value="start_handling_anyway"' not in html and 'id="start-handling-decided-by">admin<' in html


def test_start_handling_anyway_from_the_orders_list_leaves_the_others_alone(admin_client, admin_user, account, make_account, binding, enqueued):
    orders = {}
    for order_id, kw in (("1-01", {}), ("2-01", {"canceled": True}), ("3-01", {})):
        orders[order_id] = make_hub_order(account, order_id, **kw)
        make_sync(orders[order_id], binding, SyncStatus.FAILED)
    sync_ops.abandon_syncs(OrderSync.objects.filter(order__order_id__in=["1-01", "2-01"]), admin_user)
    waiting = orders["3-01"]  # still waiting for its gating send: not abandoned, not called anyway

    _, messages = run_action(admin_client, "order", "start_handling_anyway", [o.pk for o in orders.values()])

    assert messages == ["Start-handling due now, called anyway: 1 order in 1 store. 2 orders left alone "
                        "(not waiting on an abandoned sync, canceled, or start-handling switched off for the store)."]
    states = dict(Order.objects.values_list("order_id", "start_handling_state"))
    assert states == {"1-01": "pending", "2-01": "abandoned", "3-01": "pending"}
    waiting.refresh_from_db()
    assert waiting.start_handling_due_at is None
    assert enqueued == [account.pk]


def test_the_migration_moves_orders_already_stuck_behind_an_abandoned_sync(account, binding, admin_user):
    stuck = make_hub_order(account, "1-01")
    make_sync(stuck, binding, SyncStatus.ABANDONED, resolved_by=admin_user, resolved_at=timezone.now())
    waiting = make_hub_order(account, "2-01")
    make_sync(waiting, binding, SyncStatus.FAILED)
    migration = importlib.import_module("integration.migrations.0008_start_handling_abandoned")
    migration.mark_already_abandoned(global_apps, None)
    stuck.refresh_from_db()
    waiting.refresh_from_db()
    assert stuck.start_handling_state == StartHandlingState.ABANDONED and stuck.start_handling_decided_by == admin_user
    assert waiting.start_handling_state == StartHandlingState.PENDING
