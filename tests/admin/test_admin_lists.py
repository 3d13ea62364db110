"""The sync and order lists: filters, exact search, and a constant number of queries per page."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integration.models import OrderSync, SyncStatus
from tests.shared_fixtures import make_binding, make_hub_order, make_sync

pytestmark = pytest.mark.django_db


def listed(client, model, **params):
    response = client.get(reverse(f"admin:integration_{model}_changelist"), params)
    assert response.status_code == 200, response.content[:500]
    return response, {obj.pk for obj in response.context["cl"].result_list}


@pytest.fixture
def mixed(account, make_account, binding):
    other = make_account(name="Other store", account_name="other", app_key="vtexappkey-other-XYZ")
    wms = make_binding(account, name="WMS")
    other_binding = make_binding(other, name="Other ERP")
    syncs = {
        "failed": make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.FAILED, error="ERP answered 500: <b>down</b>"),
        "held": make_sync(make_hub_order(account, "11-01"), wms, SyncStatus.HELD),
        "done": make_sync(make_hub_order(account, "2-01"), binding, SyncStatus.SUCCEEDED),
        "other": make_sync(make_hub_order(other, "3-01"), other_binding, SyncStatus.FAILED),
        "cancel": make_sync(make_hub_order(account, "4-01"), binding, SyncStatus.FAILED, action="cancel"),
    }
    old = make_sync(make_hub_order(account, "5-01"), binding, SyncStatus.FAILED)
    OrderSync.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    syncs["old"] = old
    return syncs, other, wms


def test_failed_and_held_pages_show_only_their_status(admin_client, mixed):
    syncs, _, _ = mixed
    response, pks = listed(admin_client, "failedsync")
    assert pks == {syncs[k].pk for k in ("failed", "other", "cancel", "old")}
    html = response.content.decode()
    assert "ERP answered 500: &lt;b&gt;down&lt;/b&gt;" in html
    assert reverse("admin:integration_order_change", args=[syncs["failed"].order_id]) in html
    response, pks = listed(admin_client, "heldsync")
    assert pks == {syncs["held"].pk}
    assert "VTEX says the order is" in response.content.decode()
    _, pks = listed(admin_client, "ordersync")
    assert len(pks) == 6


def test_sync_filters(admin_client, mixed, account):
    syncs, other, wms = mixed
    assert listed(admin_client, "ordersync", store=other.pk)[1] == {syncs["other"].pk}
    assert listed(admin_client, "ordersync", binding=wms.pk)[1] == {syncs["held"].pk}
    assert listed(admin_client, "failedsync", action="cancel")[1] == {syncs["cancel"].pk}
    assert listed(admin_client, "ordersync", status__exact="succeeded")[1] == {syncs["done"].pk}
    since = (timezone.now() - timedelta(days=7)).isoformat()
    week = listed(admin_client, "failedsync", created_at__gte=since)[1]
    assert syncs["old"].pk not in week and syncs["failed"].pk in week
    combined = listed(admin_client, "failedsync", store=account.pk, action="send", created_at__gte=since)[1]
    assert combined == {syncs["failed"].pk}


def test_search_is_by_exact_order_id(admin_client, mixed):
    syncs, _, _ = mixed
    assert listed(admin_client, "ordersync", q="1-01")[1] == {syncs["failed"].pk}          # not 11-01
    assert listed(admin_client, "ordersync", q=" 1-01  11-01 ")[1] == {syncs["failed"].pk, syncs["held"].pk}
    assert listed(admin_client, "ordersync", q="1-0")[1] == set()
    assert {o.order_id for o in listed(admin_client, "order", q="3-01")[0].context["cl"].result_list} == {"3-01"}


def test_lists_never_count_the_whole_table(admin_client, mixed):
    for model in ("ordersync", "failedsync", "heldsync", "order"):
        response, _ = listed(admin_client, model)
        assert response.context["cl"].show_full_result_count is False
        assert response.context["cl"].full_result_count is None


@pytest.mark.parametrize("model", ["ordersync", "failedsync", "order"])
def test_list_queries_do_not_grow_with_the_rows(admin_client, account, binding, model):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            listed(admin_client, model)
        return len(ctx.captured_queries)

    for n in range(3):
        make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.FAILED)
    few = count()
    for n in range(3, 60):
        make_sync(make_hub_order(account, f"{n}-01"), make_binding(account, name=f"ERP {n % 4}") if n % 10 == 0 else binding,
                  SyncStatus.FAILED)
    assert count() == few


def test_the_sync_list_loads_no_order_snapshot(admin_client, account, binding):
    make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.FAILED)
    with CaptureQueriesContext(connection) as ctx:
        listed(admin_client, "failedsync")
    page_query = [q["sql"] for q in ctx.captured_queries if 'SELECT "integration_ordersync"."id"' in q["sql"]]
    assert page_query and all('"snapshot"' not in sql for sql in page_query)
