"""A sandbox store in the admin: test orders on demand, the demo store's credentials on its page."""
import pytest
from django.urls import reverse

from integration.demo import DEMO_APP_TOKEN
from integration.models import Account
from integration.operations import stores as store_ops

pytestmark = pytest.mark.django_db
APP_KEY = "vtexappkey-sandboxadmin-TEST"
APP_TOKEN = "sandbox-admin-token-123456"


@pytest.fixture
def sandbox(serve_sandbox):
    return serve_sandbox("sbstore", APP_KEY, APP_TOKEN, seed=5)


@pytest.fixture
def sandbox_store(sandbox):
    account = Account(name="Sandbox store", account_name="sbstore", app_key=APP_KEY, api_base_url=sandbox.url)
    account.app_token = APP_TOKEN
    account.save()
    return account


def sandbox_orders(sandbox):
    import requests

    return requests.get(f"{sandbox.url}/_sandbox/orders", params={"app_key": APP_KEY}, timeout=5).json()


def test_create_test_orders_asks_the_sandbox_for_ready_orders(sandbox, sandbox_store, enqueued_feed_cycles):
    before = len(sandbox_orders(sandbox))
    result = store_ops.create_sandbox_orders(sandbox_store, count=3)
    assert result.level == "success", result.text
    orders = sandbox_orders(sandbox)
    assert len(orders) == before + 3
    assert all(order["status"] == "ready-for-handling" for order in orders[before:])
    assert "created 3 test orders" in result.text and orders[-1]["orderId"] in result.text
    assert enqueued_feed_cycles == [sandbox_store.pk]  # taken in at once, not at the next minute


def test_a_real_vtex_store_is_never_asked(account, enqueued_feed_cycles):
    assert "vtexcommercestable.com.br" in account.api_base_url  # VTEX's own host, even as an override
    result = store_ops.create_sandbox_orders(account)
    assert result.level == "warning" and "not a sandbox store" in result.text
    assert enqueued_feed_cycles == []


def test_a_base_url_that_is_not_a_sandbox_is_told(make_account, enqueued_feed_cycles):
    import responses

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, "https://proxy.example.com/_sandbox/orders", status=404, body="no such route")
        store = make_account(account_name="proxied", app_key="vtexappkey-proxied-X", api_base_url="https://proxy.example.com")
        result = store_ops.create_sandbox_orders(store)
        # The token never travels with the request: the control route needs none.
        assert "X-VTEX-API-AppToken" not in rsps.calls[0].request.headers
    assert result.level == "warning" and "not a VTEX sandbox" in result.text
    assert enqueued_feed_cycles == []


def test_the_store_page_offers_the_button_for_a_sandbox_store_only(admin_client, sandbox, sandbox_store, account,
                                                                   enqueued_feed_cycles):
    page = admin_client.get(reverse("admin:integration_account_change", args=[sandbox_store.pk])).content.decode()
    assert 'id="page-action-create-test-orders"' in page
    real = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert 'id="page-action-create-test-orders"' not in real
    before = len(sandbox_orders(sandbox))
    response = admin_client.post(reverse("admin:integration_account_page_action", args=[sandbox_store.pk, "create_test_orders"]))
    assert response.status_code == 302
    assert len(sandbox_orders(sandbox)) == before + store_ops.TEST_ORDERS


def test_the_demo_stores_page_shows_its_sandbox_credentials_in_demo_mode_only(admin_client, sandbox_store, settings):
    Account.objects.filter(pk=sandbox_store.pk).update(is_demo=True)
    url = reverse("admin:integration_account_change", args=[sandbox_store.pk])
    settings.HUB_DEMO = True
    page = admin_client.get(url).content.decode()
    assert 'id="demo-credentials"' in page and DEMO_APP_TOKEN in page and APP_KEY in page
    settings.HUB_DEMO = False
    page = admin_client.get(url).content.decode()
    assert 'id="demo-credentials"' not in page and DEMO_APP_TOKEN not in page


@pytest.fixture
def enqueued_feed_cycles(monkeypatch):
    calls = []
    monkeypatch.setattr("integration.queueing.enqueue_feed_cycle", lambda account_id: calls.append(account_id))
    return calls
