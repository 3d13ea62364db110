"""The webhook adapter against a real HTTP server on loopback (see conftest.py)."""
import hashlib
import hmac
import json
import re
import socket
import time
from pathlib import Path

import pytest

import erp_plugins.webhook
from erp_plugins.webhook.adapter import WebhookAdapter
from integration.plugins import PermanentError, SettingsError, TransientError, hub_version, parse_order

SECRET = "whsec-test-signing-secret-0123456789"
TOKEN = "erp-bearer-token-abcdef123456"

RAW = {
    "orderId": "1500000000001-01",
    "sequence": "500001",
    "status": "ready-for-handling",
    "hostname": "teststore",
    "value": 2290,
    "items": [{"id": "18", "name": "Cat food", "quantity": 2, "price": 995, "sellingPrice": 995}],
    "totals": [{"id": "Items", "value": 1990}, {"id": "Shipping", "value": 300}],
    "storePreferencesData": {"currencyCode": "BRL"},
}


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """The receiver's check, exactly as documented in docs/adapters/webhook.md."""
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def documented_verify():
    """The `verify` function of the receiver snippet in docs/adapters/webhook.md."""
    root = Path(__file__).resolve().parents[3]
    for doc in (root / "docs" / "adapters" / "webhook.md",):
        text = doc.read_text("utf-8") if doc.exists() else ""
        match = re.search(r"```python\n(import hashlib\n.*?def verify\(secret.*?)```", text, re.S)
        if match:
            namespace = {}
            exec(match.group(1), namespace)
            return namespace["verify"]
    pytest.fail("no receiver snippet `def verify(secret, ...)` found in docs/adapters/webhook.md")


def make_adapter(url, **settings):
    return WebhookAdapter(WebhookAdapter.validate_settings({"url": url, **settings}))


def send(adapter, key="idem-1"):
    return adapter.send_order(parse_order(RAW), RAW, key)


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# --- settings ---------------------------------------------------------------------------------

def test_settings_defaults_and_coercion():
    cleaned = WebhookAdapter.validate_settings({"url": "https://erp.example.com/in", "timeout": "12", "junk": 1})
    assert cleaned["url"] == "https://erp.example.com/in"
    assert cleaned["timeout"] == 12
    assert "junk" not in cleaned
    assert WebhookAdapter.validate_settings({"url": "http://erp.example.com"})["timeout"] == 30
    assert WebhookAdapter.secret_setting_names() == {"signing_secret", "bearer_token", "secret_headers"}


def test_settings_collect_every_bad_field():
    with pytest.raises(SettingsError) as info:
        WebhookAdapter.validate_settings({"url": "ftp://erp.example.com", "timeout": "soon", "headers": "no colon here"})
    assert set(info.value.errors) == {"url", "timeout", "headers"}
    with pytest.raises(SettingsError) as info:
        WebhookAdapter.validate_settings({"timeout": 0, "headers": "Idempotency-Key: mine"})
    assert info.value.errors["url"] == "This field is required."
    assert "1 to 300" in info.value.errors["timeout"]
    assert "set by the hub" in info.value.errors["headers"]


def test_settings_url_needs_a_host():
    for bad in ("https://", "http:///path", "erp.example.com/in", "javascript:alert(1)", "http://a b.com/"):
        with pytest.raises(SettingsError) as info:
            WebhookAdapter.validate_settings({"url": bad})
        assert "url" in info.value.errors, bad


def test_builtin_plugin_hook_returns_the_adapter():
    assert erp_plugins.webhook.erp_adapters() == [WebhookAdapter]


# --- delivery ---------------------------------------------------------------------------------

def test_send_success_with_reference_and_request_format(erp):
    erp.on("/hook", erp.json_answer(201, {"id": "ERP-778", "status": "created"}))
    delivery = send(make_adapter(erp.url(), headers="X-Tenant: acme\n\nX-Env: test"), key="order-1-send-b7")

    assert delivery.reference == "ERP-778"
    assert "HTTP 201" in delivery.response_excerpt and "ERP-778" in delivery.response_excerpt
    assert delivery.request_excerpt.startswith("POST http://127.0.0.1")
    [request] = erp.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "order-1-send-b7"
    assert request.headers["User-Agent"] == f"vtex-order-hub/{hub_version()}"
    assert request.headers["X-Tenant"] == "acme" and request.headers["X-Env"] == "test"
    assert "X-Hub-Signature-256" not in request.headers and "Authorization" not in request.headers
    payload = json.loads(request.body)
    assert payload["event"] == "order.send"
    assert payload["idempotency_key"] == "order-1-send-b7"
    assert payload["vtex_order"] == RAW
    assert payload["order"]["order_id"] == "1500000000001-01"
    assert payload["order"]["items"][0]["unit_price"] == "9.95"
    assert payload["order"]["value"] == "22.90"
    assert "state" not in payload


def test_the_body_is_compact_utf8_json_and_unusual_values_still_go_out(erp):
    # The body is written by orjson; what it refuses (a whole number past 64 bits) by the
    # standard library, and a value of another type as its text, as json's default=str did.
    from datetime import datetime, timezone
    from decimal import Decimal

    erp.on("/hook", erp.json_answer(200, {"id": "E-1"}))
    adapter = make_adapter(erp.url())
    raw = dict(RAW, clientName="Joana Conceição 東京", note=None)
    adapter.send_order(parse_order(RAW), raw, "idem-utf8")
    odd = dict(RAW, huge=2**70, paid=Decimal("10.50"), at=datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc))
    adapter.send_order(parse_order(RAW), odd, "idem-odd")

    first, second = erp.requests
    assert "Joana Conceição 東京".encode("utf-8") in first.body  # UTF-8, not \u escapes
    assert b'","' in first.body and b'": ' not in first.body  # no spaces between items or after keys
    assert json.loads(first.body)["vtex_order"] == raw
    sent = json.loads(second.body)["vtex_order"]
    assert (sent["huge"], sent["paid"], sent["at"]) == (2**70, "10.50", "2026-12-03 12:00:00+00:00")


@pytest.mark.parametrize("answer,expected", [
    ({"reference": "R-1"}, "R-1"),
    ({"orderId": 4411}, "4411"),
    ({"ok": True}, ""),
    (["id", "x"], ""),
])
def test_reference_from_json_answer(erp, answer, expected):
    erp.on("/hook", erp.json_answer(200, answer))
    assert send(make_adapter(erp.url())).reference == expected


def test_non_json_2xx_is_success_without_reference(erp):
    erp.on("/hook", erp.answer(202, b"accepted, thanks"))
    delivery = send(make_adapter(erp.url()))
    assert delivery.reference == ""
    assert "HTTP 202" in delivery.detail


def test_signature_verifies_with_the_documented_recipe(erp):
    erp.on("/hook", erp.json_answer(200, {"id": "1"}))
    before = int(time.time())
    send(make_adapter(erp.url(), signing_secret=SECRET))
    [request] = erp.requests
    header = request.headers["X-Hub-Signature-256"]
    assert header.startswith("sha256=")
    assert verify_signature(SECRET, request.body, header)
    assert not verify_signature("another-secret", request.body, header)
    assert not verify_signature(SECRET, request.body + b" ", header)
    # The snippet published for receivers accepts it too, and refuses a wrong secret.
    verify = documented_verify()
    assert verify(SECRET, request.body, header)["idempotency_key"] == "idem-1"
    with pytest.raises(ValueError):
        verify("another-secret", request.body, header)
    # The timestamp header repeats the signed body's timestamp, so a receiver can refuse replays.
    timestamp = int(request.headers["X-Hub-Timestamp"])
    assert before <= timestamp <= int(time.time())
    assert json.loads(request.body)["timestamp"] == timestamp


def test_bearer_token_sent_as_authorization(erp):
    erp.on("/hook", erp.json_answer(200, {}))
    send(make_adapter(erp.url(), bearer_token=TOKEN))
    assert erp.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_cancel_and_status_events(erp):
    erp.on("/hook", erp.json_answer(200, {}))
    adapter = make_adapter(erp.url())
    order = parse_order(RAW)
    adapter.cancel_order(order, RAW, "k-cancel")
    adapter.status_changed(order, RAW, "invoiced", "k-status")
    cancel, status = (json.loads(r.body) for r in erp.requests)
    assert cancel["event"] == "order.cancel" and "state" not in cancel
    assert status["event"] == "order.status" and status["state"] == "invoiced"
    assert erp.requests[1].headers["Idempotency-Key"] == "k-status"


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_answers_are_transient(erp, status):
    erp.on("/hook", erp.json_answer(status, {"error": "busy"}))
    with pytest.raises(TransientError) as info:
        send(make_adapter(erp.url()))
    assert not info.value.permanent
    assert f"HTTP {status}" in info.value.message
    assert "busy" in info.value.response_excerpt
    assert info.value.request_excerpt.startswith("POST ")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_client_errors_are_permanent_with_excerpt(erp, status):
    erp.on("/hook", erp.json_answer(status, {"error": "SKU 18 unknown in ERP"}))
    with pytest.raises(PermanentError) as info:
        send(make_adapter(erp.url()))
    assert info.value.permanent
    assert f"HTTP {status}" in info.value.message
    assert "SKU 18 unknown in ERP" in info.value.message
    assert "SKU 18 unknown in ERP" in info.value.response_excerpt


def test_timeout_is_transient(erp):
    erp.on("/hook", erp.answer(200, b"{}", delay=3))
    adapter = make_adapter(erp.url(), timeout=1)
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        send(adapter)
    assert time.monotonic() - started < 2.5
    assert "timed out" in info.value.message


def test_connection_refused_is_transient():
    with pytest.raises(TransientError) as info:
        send(make_adapter(closed_port_url()))
    assert "could not connect" in info.value.message


# --- redirects --------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_redirect_on_same_origin_is_followed_with_body_and_signature(erp, code):
    erp.on("/old", erp.answer(code, headers={"Location": "/new"}))
    erp.on("/new", erp.json_answer(200, {"id": "moved-ok"}))
    delivery = send(make_adapter(erp.url("/old"), signing_secret=SECRET))
    assert delivery.reference == "moved-ok"
    first, second = erp.requests
    assert (second.method, second.path) == ("POST", "/new")
    assert second.body == first.body
    assert verify_signature(SECRET, second.body, second.headers["X-Hub-Signature-256"])


def test_see_other_becomes_a_get_of_the_result(erp):
    erp.on("/hook", erp.answer(303, headers={"Location": "/orders/77"}))
    erp.on("/orders/77", erp.json_answer(200, {"id": "77"}))
    assert send(make_adapter(erp.url(), signing_secret=SECRET)).reference == "77"
    first, second = erp.requests
    assert (second.method, second.body) == ("GET", b"")
    assert "X-Hub-Signature-256" not in second.headers


@pytest.mark.parametrize("location", [None, "http://127.0.0.1:notaport/x"])
def test_unusable_redirect_is_permanent(erp, location):
    erp.on("/hook", erp.answer(302, headers={"Location": location} if location else {}))
    with pytest.raises(PermanentError):
        send(make_adapter(erp.url()))
    assert len(erp.requests) == 1


def test_redirect_to_another_port_is_refused_without_leaking(erp, other_erp):
    erp.on("/hook", erp.answer(307, headers={"Location": other_erp.url("/steal")}))
    other_erp.on("/steal", other_erp.json_answer(200, {"id": "stolen"}))
    with pytest.raises(PermanentError) as info:
        send(make_adapter(erp.url(), signing_secret=SECRET, bearer_token=TOKEN))
    assert "another host" in info.value.message
    assert other_erp.requests == []
    assert len(erp.requests) == 1


def test_redirect_to_another_host_name_is_refused(erp):
    # Same port, different host name: still another origin.
    erp.on("/hook", erp.answer(302, headers={"Location": f"http://localhost:{erp.port}/hook2"}))
    erp.on("/hook2", erp.json_answer(200, {}))
    with pytest.raises(PermanentError):
        send(make_adapter(erp.url(), bearer_token=TOKEN))
    assert [r.path for r in erp.requests] == ["/hook"]


def test_redirect_from_http_to_https_is_refused(erp):
    erp.on("/hook", erp.answer(301, headers={"Location": f"https://127.0.0.1:{erp.port}/hook"}))
    with pytest.raises(PermanentError):
        send(make_adapter(erp.url()))
    assert len(erp.requests) == 1


def test_at_most_three_redirects(erp):
    erp.on("/loop", erp.answer(307, headers={"Location": "/loop"}))
    with pytest.raises(PermanentError) as info:
        send(make_adapter(erp.url("/loop")))
    assert "more than 3" in info.value.message
    assert len(erp.requests) == 4  # the request and three redirects


# --- secrets ----------------------------------------------------------------------------------

def test_secrets_never_in_excerpts_or_messages(erp):
    # A careless ERP echoes the request, credentials included.
    echo = {"error": "bad request", "echo": f"Authorization: Bearer {TOKEN}; key={SECRET}; short=tiny5"}
    erp.on("/hook", erp.json_answer(400, echo))
    adapter = make_adapter(erp.url(), signing_secret=SECRET, bearer_token=TOKEN, headers="X-Api-Key: tiny5")
    with pytest.raises(PermanentError) as info:
        send(adapter)
    error = info.value
    for text in (error.message, str(error), error.request_excerpt, error.response_excerpt):
        assert TOKEN not in text
        assert SECRET not in text
        assert "tiny5" not in text
    assert "bad request" in error.response_excerpt
    assert "[redacted]" in error.response_excerpt
    # The real request did carry them.
    assert erp.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert erp.requests[0].headers["X-Api-Key"] == "tiny5"


def test_secrets_not_in_success_excerpts(erp):
    erp.on("/hook", erp.json_answer(200, {"id": "1", "seen_token": TOKEN}))
    delivery = send(make_adapter(erp.url(), signing_secret=SECRET, bearer_token=TOKEN))
    for text in (delivery.request_excerpt, delivery.response_excerpt, delivery.detail):
        assert TOKEN not in text and SECRET not in text
    assert "Idempotency-Key: idem-1" in delivery.request_excerpt


# --- connection check -------------------------------------------------------------------------

def test_check_connection_reachable(erp):
    erp.on("/hook", erp.json_answer(405, {}))
    message = make_adapter(erp.url(), bearer_token=TOKEN).check_connection()
    assert "reachable" in message
    assert erp.requests[0].method == "HEAD"


def test_check_connection_server_error_and_unreachable(erp):
    erp.on("/hook", erp.json_answer(503, {}))
    with pytest.raises(TransientError):
        make_adapter(erp.url()).check_connection()
    with pytest.raises(TransientError):
        make_adapter(closed_port_url()).check_connection()


def test_deliveries_share_one_kept_alive_connection_and_no_cookie(erp):
    """The dispatcher builds an adapter per delivery and closes it after: the connection to the
    endpoint outlives them (one TCP connection for three orders), and a cookie the ERP sets is
    never sent back with the next order."""
    erp.on("/keepalive", erp.answer(200, b'{"id": "ERP-1"}', headers={"Set-Cookie": "session=abc123; Path=/"}))
    for n in range(3):
        adapter = make_adapter(erp.url("/keepalive"))
        send(adapter, key=f"idem-{n}")
        adapter.close()
    assert len(erp.requests) == 3
    assert len({r.peer for r in erp.requests}) == 1
    assert all("Cookie" not in r.headers for r in erp.requests)
