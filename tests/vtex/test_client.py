import json

import pytest
import responses
from responses import matchers

from integration.models import RoutePause
from integration.vtex import errors
from integration.pipeline.vtex_access import client_for
from tests.vtex_spec import assert_request_matches_spec

BASE = "https://teststore.vtexcommercestable.com.br"
AUTH = {"X-VTEX-API-AppKey": "vtexappkey-teststore-ABCDEF", "X-VTEX-API-AppToken": "test-app-token-SECRET-123",
        "Accept": "application/json", "Content-Type": "application/json"}


def test_default_base_url_is_vtexcommercestable(make_account):
    acct = make_account(api_base_url="")
    assert client_for(acct).base_url == "https://teststore.vtexcommercestable.com.br"


def test_every_method_sends_what_the_spec_documents(account, vtex):
    client = client_for(account)
    vtex.get(f"{BASE}/api/orders/feed", json=[], match=[matchers.query_param_matcher({"maxlot": "10"}), matchers.header_matcher(AUTH)])
    vtex.post(f"{BASE}/api/orders/feed", match=[matchers.json_params_matcher({"handles": ["h1", "h2"]}), matchers.header_matcher(AUTH)])
    vtex.get(f"{BASE}/api/orders/feed/config", json={"filter": {"type": "FromWorkflow", "status": ["ready-for-handling"]},
             "queue": {"visibilityTimeoutInSeconds": 250, "messageRetentionPeriodInSeconds": 345600},
             "quantity": 3, "aproximateAgeOfOldestMessageInSeconds": 12.5})
    body = account.feed_config.to_vtex()
    vtex.post(f"{BASE}/api/orders/feed/config", match=[matchers.json_params_matcher(body)])
    vtex.delete(f"{BASE}/api/orders/feed/config")
    vtex.get(f"{BASE}/api/oms/pvt/orders/123-01", json={"orderId": "123-01"})
    vtex.post(f"{BASE}/api/oms/pvt/orders/123-01/start-handling", status=204)
    vtex.post(f"{BASE}/api/oms/pvt/orders/123-01/cancel", json={"date": "x", "orderId": "123-01", "receipt": "r"})
    hook = {"filter": {"type": "FromWorkflow", "status": ["ready-for-handling"]}, "hook": {"url": "https://hub.example/h", "headers": {"key": "k"}}}
    vtex.post(f"{BASE}/api/orders/hook/config", json={}, match=[matchers.json_params_matcher(hook)])
    vtex.get(f"{BASE}/api/orders/hook/config", json={})
    vtex.delete(f"{BASE}/api/orders/hook/config")
    vtex.get(f"{BASE}/api/oms/pvt/orders", json={"list": [], "paging": {}})

    assert client.retrieve_feed_items(10) == []
    client.commit_handles(["h1", "h2"])
    config = client.get_feed_configuration()
    assert (config["quantity"], config["oldest_message_age"], config["retention"]) == (3, 12.5, 345600)
    client.save_feed_configuration(body)
    client.delete_feed_configuration()
    assert client.get_order("123-01") == {"orderId": "123-01"}
    client.start_handling("123-01")
    client.cancel_order("123-01", reason="customer asked")
    client.save_hook_configuration(hook)
    client.get_hook_configuration()
    client.delete_hook_configuration()
    client.list_orders(status="ready-for-handling", created_from="2026-01-01T00:00:00.000Z", created_to="2026-01-02T00:00:00.000Z")

    templates = [assert_request_matches_spec(call.request) for call in vtex.calls]
    assert len(templates) == 12
    start = next(c.request for c in vtex.calls if c.request.url.endswith("start-handling"))
    assert start.body is None


@pytest.mark.parametrize("maxlot", [0, 11])
def test_maxlot_is_bounded(account, maxlot):
    with pytest.raises(ValueError):
        client_for(account).retrieve_feed_items(maxlot)


@pytest.mark.parametrize("status,error", [(401, errors.Unauthorized), (403, errors.Unauthorized), (404, errors.NotFound),
                                          (409, errors.Conflict), (400, errors.ClientError)])
def test_error_statuses_are_typed(account, vtex, status, error):
    vtex.post(f"{BASE}/api/oms/pvt/orders/1-01/start-handling", status=status, json={"error": {"code": "OMS003"}})
    with pytest.raises(error) as info:
        client_for(account).start_handling("1-01")
    assert info.value.status == status
    assert "test-app-token-SECRET-123" not in str(info.value)


def test_get_retries_5xx_then_succeeds(account, vtex):
    vtex.get(f"{BASE}/api/oms/pvt/orders/1-01", status=500)
    vtex.get(f"{BASE}/api/oms/pvt/orders/1-01", status=502)
    vtex.get(f"{BASE}/api/oms/pvt/orders/1-01", json={"orderId": "1-01"})
    assert client_for(account).get_order("1-01")["orderId"] == "1-01"
    assert len(vtex.calls) == 3


def test_get_gives_up_after_a_few_network_errors(account, vtex):
    import requests

    vtex.get(f"{BASE}/api/oms/pvt/orders/1-01", body=requests.ConnectionError("boom"))
    with pytest.raises(errors.NetworkError):
        client_for(account).get_order("1-01")
    assert len(vtex.calls) == 3


def test_post_is_never_retried_blindly(account, vtex):
    vtex.post(f"{BASE}/api/oms/pvt/orders/1-01/start-handling", status=500)
    with pytest.raises(errors.ServerError):
        client_for(account).start_handling("1-01")
    assert len(vtex.calls) == 1


def test_bad_json_is_a_clear_error(account, vtex):
    vtex.get(f"{BASE}/api/orders/feed", body="<html>oops</html>", status=200)
    with pytest.raises(errors.BadResponse, match="not JSON"):
        client_for(account).retrieve_feed_items()


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_pause_the_route_for_every_worker(account, vtex, status):
    vtex.get(f"{BASE}/api/oms/pvt/orders/1-01", status=status, headers={"Retry-After": "120"})
    with pytest.raises(errors.RateLimited) as info:
        client_for(account).get_order("1-01")
    assert info.value.retry_after == 120
    assert RoutePause.active_until(account.pk, "get_order") is not None
    # A second worker (a new client) does not call VTEX at all while the route is paused ...
    with pytest.raises(errors.RoutePaused):
        client_for(account).get_order("1-01")
    assert len(vtex.calls) == 1
    # ... and other routes of the store are not paused.
    vtex.post(f"{BASE}/api/oms/pvt/orders/1-01/start-handling", status=204)
    client_for(account).start_handling("1-01")


def test_429_without_retry_after_waits_one_minute(account, vtex):
    from django.utils import timezone

    vtex.get(f"{BASE}/api/orders/feed", status=429)
    with pytest.raises(errors.RateLimited) as info:
        client_for(account).retrieve_feed_items()
    assert info.value.retry_after == 60
    until = RoutePause.active_until(account.pk, "feed_retrieve")
    assert 50 < (until - timezone.now()).total_seconds() <= 61


def test_feed_configuration_keys_parse_case_insensitively(account, vtex):
    vtex.get(f"{BASE}/api/orders/feed/config", json={"Filter": {"type": "FromOrders"}, "Queue": {"VisibilityTimeoutInSeconds": 30, "MessageRetentionPeriodInSeconds": 400000}, "Quantity": 0, "approximateAgeOfOldestMessageInSeconds": 1})
    config = client_for(account).get_feed_configuration()
    assert (config["visibility_timeout"], config["retention"], config["quantity"], config["oldest_message_age"]) == (30, 400000, 0, 1)
