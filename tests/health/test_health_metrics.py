from datetime import timedelta

import pytest
from django.utils import timezone

from integration.models import Account, AdapterBinding, Order, OrderSync
from integration.pipeline.vtex_access import client_for
from tests.fake_feed import BASE

pytestmark = pytest.mark.django_db


def test_health_reports_database_broker_and_stores(client, make_account):
    ok = make_account(name="OK", account_name="okstore", app_key="k1")
    stale = make_account(name="Stale", account_name="stalestore", app_key="k2")
    Account.objects.filter(pk=ok.pk).update(last_cycle_at=timezone.now(), last_cycle_ok=True)
    Account.objects.filter(pk=stale.pk).update(last_cycle_at=timezone.now() - timedelta(hours=1), last_cycle_ok=True)
    response = client.get("/health/")
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    assert body["database"] == "ok" and body["broker"] == "ok"
    assert body["stores"]["okstore"]["ok"] is True
    assert body["stores"]["stalestore"]["ok"] is False and "ago" in body["stores"]["stalestore"]["detail"]


def test_metrics_in_prometheus_text(client, account, vtex, recorder, settings):
    binding = AdapterBinding.objects.create(account=account, adapter_key="rec_a")
    order = Order.objects.create(account=account, order_id="1-01")
    OrderSync.objects.create(order=order, binding=binding, action="send", status="failed")
    vtex.get(f"{BASE}/api/oms/pvt/orders/1-01", status=429, headers={"Retry-After": "30"})
    with pytest.raises(Exception):
        client_for(account).get_order("1-01")
    response = client.get("/metrics")
    text = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert 'vtexhub_syncs{status="failed",store="teststore"} 1' in text
    assert 'vtexhub_vtex_responses_total{code="429",route="get_order",store="teststore"} 1' in text
    assert 'vtexhub_route_paused{route="get_order",store="teststore"} 1' in text
    assert "# TYPE vtexhub_syncs gauge" in text
    settings.METRICS_TOKEN = "scrape-token-123456"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123456").status_code == 200


@pytest.mark.django_db(transaction=True)  # the check runs its own transaction, as in production
def test_health_reports_a_database_that_cannot_be_written_as_down(client, account):
    """SELECT 1 answers on a read-only database, while every hook (503) and admin save fails."""
    from django.db import connection

    assert client.get("/health/").json()["database"] == "ok"
    sqlite = connection.vendor == "sqlite"
    with connection.cursor() as cursor:
        # The connection refuses writes, as a read-only file (SQLite) or a read-only replica does.
        cursor.execute("PRAGMA query_only = ON" if sqlite else "SET default_transaction_read_only = on")
    try:
        response = client.get("/health/")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA query_only = OFF" if sqlite else "SET default_transaction_read_only = off")
    body = response.json()
    assert response.status_code == 503 and body["ok"] is False
    assert body["database"].startswith("cannot write") and "read" in body["database"].lower()
