"""The health dashboard: what it shows per store, its SVG chart, and a query count that stays flat."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integration.admin.dashboard import HOURS, dashboard_data, hour_buckets, hourly_chart
from integration.models import Account, Alert, AlertKind, OrderSync, SyncStatus
from tests.shared_fixtures import make_binding, make_hub_order, make_sync

pytestmark = pytest.mark.django_db

URL = "admin:integration_dashboard"


def aged(sync, **delta):
    OrderSync.objects.filter(pk=sync.pk).update(created_at=timezone.now() - timedelta(**delta))
    return sync


@pytest.fixture
def busy(account, binding):
    syncs = {
        "ok": [make_sync(make_hub_order(account, f"{n}-01"), binding, SyncStatus.SUCCEEDED) for n in range(3)],
        "failed_new": make_sync(make_hub_order(account, "10-01"), binding, SyncStatus.FAILED),
        "failed_old": aged(make_sync(make_hub_order(account, "11-01"), binding, SyncStatus.FAILED), hours=5),
        "held": aged(make_sync(make_hub_order(account, "12-01"), binding, SyncStatus.HELD), hours=2),
        "ancient": aged(make_sync(make_hub_order(account, "13-01"), binding, SyncStatus.FAILED), days=3),
    }
    Account.objects.filter(pk=account.pk).update(
        feed_backlog_quantity=12, feed_backlog_age=200000, feed_backlog_checked_at=timezone.now(),
        last_cycle_at=timezone.now(), last_cycle_ok=True)
    Alert.objects.create(kind=AlertKind.PENDING_TOO_OLD, subject="teststore", account=account, message="The oldest pending sync is 90 minutes old.")
    Alert.objects.create(kind=AlertKind.HOOK_SILENT, subject="teststore", account=account, message="recovered", resolved_at=timezone.now())
    return syncs


def test_the_dashboard_shows_each_stores_health(admin_client, account, busy, make_account):
    make_account(name="Empty store", account_name="empty", app_key="key-empty")
    response = admin_client.get(reverse(URL))
    assert response.status_code == 200
    stores = {s["store"].name: s for s in response.context["stores"]}
    mine = stores["Test store"]
    counts = {value: n for _, n, value in mine["counts"]}
    # Syncs created in the last 24 h, by status: the 3-day-old failure is not counted.
    assert (counts["succeeded"], counts["failed"], counts["held"], counts["pending"]) == (3, 2, 1, 0)
    assert mine["total"] == 6
    # The oldest failed sync, whatever its age, links to its order.
    assert mine["store"].oldest_failed_order_id == "13-01"
    assert mine["oldest_failed_url"] == reverse("admin:integration_order_change", args=[busy["ancient"].order_id])
    assert mine["oldest_failed_age"] == "3.0 days"
    assert "past it VTEX drops the message" in mine["backlog_warning"]   # 2.3 days > half of 4 days
    assert [a.message for a in mine["alerts"]] == ["The oldest pending sync is 90 minutes old."]
    assert stores["Empty store"]["total"] == 0 and stores["Empty store"]["oldest_failed_url"] == ""
    html = response.content.decode()
    assert "The oldest pending sync is 90 minutes old." in html and "recovered" not in html.split("All open alerts")[1]
    assert "<svg" in html and "cdn" not in html.lower() and "<script" not in html.split('id="content-main"')[1]
    assert "12 waiting, oldest 2.3 days" in html


def test_the_chart_puts_each_sync_in_its_hour(account, binding):
    for hours, status in ((0, SyncStatus.SUCCEEDED), (0, SyncStatus.FAILED), (2, SyncStatus.SUCCEEDED), (30, SyncStatus.SUCCEEDED)):
        aged(make_sync(make_hub_order(account, f"{hours}-{status}"), binding, status), hours=hours, minutes=1 if hours else 0)
    data = dashboard_data()
    chart = data["stores"][0]["chart"]
    assert chart.count('class="hour"') == HOURS
    totals = [int(part.split('"')[0]) for part in chart.split('data-total="')[1:]]
    assert sum(totals) == 3                        # the 30-hour-old one is outside the chart
    assert totals[-1] >= 1 and 'class="failed"' in chart and 'class="delivered"' in chart
    assert "<title>" in chart


def test_hour_buckets_end_with_the_current_hour():
    now = timezone.now()
    buckets = hour_buckets(now)
    assert len(buckets) == HOURS and buckets[-1] <= now < buckets[-1] + timedelta(hours=1)
    assert buckets[0] == buckets[-1] - timedelta(hours=HOURS - 1)


def test_the_chart_escapes_the_store_name():
    svg = hourly_chart(hour_buckets(timezone.now()), None, '<script>alert("x")</script>')
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_the_dashboard_query_count_stays_flat_as_rows_grow(admin_client, make_account):
    def page_queries():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(reverse(URL)).status_code == 200
        return len(ctx.captured_queries)

    first = make_account(name="Store 0", account_name="s0", app_key="key-0")
    make_sync(make_hub_order(first, "1-01"), make_binding(first), SyncStatus.FAILED)
    few = page_queries()
    for n in range(1, 6):
        store = make_account(name=f"Store {n}", account_name=f"s{n}", app_key=f"key-{n}")
        b1, b2 = make_binding(store, name="ERP"), make_binding(store, name="WMS")
        for k in range(4):
            order = make_hub_order(store, f"{n}{k}-01")
            make_sync(order, b1, SyncStatus.FAILED)
            aged(make_sync(order, b2, SyncStatus.SUCCEEDED), hours=k * 3)
        Alert.objects.create(kind=AlertKind.CYCLE_FAILING, subject=f"s{n}", account=store, message="failing")
    assert page_queries() == few


def test_the_dashboard_needs_a_login_and_view_permission(client, django_user_model):
    assert client.get(reverse(URL))["Location"].startswith("/admin/login/")
    nobody = django_user_model.objects.create_user("nobody", password="nobody-password-1", is_staff=True)
    client.force_login(nobody)
    assert client.get(reverse(URL)).status_code == 403


def test_operators_see_the_dashboard(operator_client, account, busy):
    assert operator_client.get(reverse(URL)).status_code == 200
