"""Hook config (ping on save) and notifications pushed to a local receiver (the LoopbackERP)."""
import time

from vtex_sandbox import Sandbox, SandboxServer

APP_KEY = "vtexappkey-teststore-ABC"  # as set up in conftest.py


def _hook_body(url, statuses=("ready-for-handling", "canceled"), key="s3cret"):
    return {"filter": {"type": "FromWorkflow", "status": list(statuses)},
            "hook": {"url": url, "headers": {"key": key}}}


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_hook_save_pings_the_url_and_is_readable(sb, vtex, erp):
    saved = vtex.post("/api/orders/hook/config", json=_hook_body(erp.url + "/vtex/hook"))
    assert saved.status_code == 200, saved.text
    assert len(erp.received) == 1
    ping = erp.received[0]
    assert ping["path"] == "/vtex/hook" and ping["body"] == {"hookConfig": "ping"}
    assert ping["headers"]["key"] == "s3cret"
    got = vtex.get("/api/orders/hook/config").json()
    assert got["hook"] == {"url": erp.url + "/vtex/hook", "headers": {"key": "s3cret"}}
    assert got["filter"]["status"] == ["ready-for-handling", "canceled"]


def test_failed_ping_is_400_and_nothing_is_saved(sb, vtex, erp):
    erp.fail_with(500)
    response = vtex.post("/api/orders/hook/config", json=_hook_body(erp.url + "/hook"))
    assert response.status_code == 400
    assert "message" in response.json()["error"]
    assert vtex.get("/api/orders/hook/config").status_code == 404
    erp.recover()
    unreachable = vtex.post("/api/orders/hook/config", json=_hook_body("http://127.0.0.1:9/nothing-listens"))
    assert unreachable.status_code == 400
    assert vtex.get("/api/orders/hook/config").status_code == 404


def test_hook_validation(vtex, erp):
    assert vtex.post("/api/orders/hook/config", json={"filter": {"type": "FromWorkflow"}}).status_code == 400
    mixed = {"filter": {"type": "FromWorkflow", "status": ["canceled"], "expression": "x"},
             "hook": {"url": erp.url, "headers": {"key": "k"}}}
    assert vtex.post("/api/orders/hook/config", json=mixed).status_code == 409
    assert vtex.post("/api/orders/hook/config", json=_hook_body("ftp://example.com/x")).status_code == 400
    assert erp.received == []   # invalid configs are never pinged


def test_https_only_when_http_hooks_are_not_allowed(http, erp):
    sandbox = Sandbox(seed=2, allow_http_hooks=False)
    sandbox.add_account("s", "k", "t")
    with SandboxServer(sandbox) as srv:
        response = http.post(srv.url + "/api/orders/hook/config", json=_hook_body(erp.url + "/hook"),
                             headers={"X-VTEX-API-AppKey": "k", "X-VTEX-API-AppToken": "t"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Only https scheme is accepted"
    assert erp.received == []


def test_notifications_are_pushed_for_changes_passing_the_filter(sb, vtex, erp):
    assert vtex.post("/api/orders/hook/config",
                     json=_hook_body(erp.url + "/hook", ("ready-for-handling", "handling"))).status_code == 200
    order_id = sb.create_orders(APP_KEY, 1)[0]
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/start-handling").status_code == 204
    notes = [r for r in erp.wait_for(3) if r["body"] != {"hookConfig": "ping"}]
    assert sorted(n["body"]["State"] for n in notes) == ["handling", "ready-for-handling"]
    for note in notes:
        body = note["body"]
        assert set(body) == {"Domain", "OrderId", "State", "LastState", "LastChange", "CurrentChange", "Origin"}
        assert body["Domain"] == "Fulfillment" and body["OrderId"] == order_id
        assert body["Origin"] == {"Account": "teststore", "Key": APP_KEY}
        assert note["headers"]["key"] == "s3cret"
        assert note["headers"]["Content-Type"] == "application/json"
    ready = next(n["body"] for n in notes if n["body"]["State"] == "ready-for-handling")
    assert ready["LastState"] == "window-to-cancel"
    assert sb.hooks.wait_idle()
    assert sb.stats()["hook_delivered"] == 2


def test_failed_deliveries_are_retried(sb, vtex, erp):
    assert vtex.post("/api/orders/hook/config", json=_hook_body(erp.url + "/hook")).status_code == 200
    erp.fail_with(503, count=2)
    sb.create_orders(APP_KEY, 1)
    assert _wait(lambda: len(erp.received) == 2)
    assert [r["status"] for r in erp.attempts[1:]] == [503, 503, 200]
    assert erp.received[1]["body"]["State"] == "ready-for-handling"
    assert sb.hooks.wait_idle()
    stats = sb.stats()
    assert (stats["hook_attempts"], stats["hook_delivered"], stats["hook_failed"]) == (3, 1, 0)


def test_delivery_gives_up_after_max_attempts(sb, vtex, erp):
    assert vtex.post("/api/orders/hook/config", json=_hook_body(erp.url + "/hook")).status_code == 200
    erp.fail_with(500)
    sb.create_orders(APP_KEY, 1)
    assert _wait(lambda: sb.stats()["hook_failed"] == 1)
    assert len(erp.rejected) == 4      # hook_max_attempts defaults to 4


def test_delivery_is_not_on_the_request_thread(sb, vtex, erp):
    assert vtex.post("/api/orders/hook/config",
                     json=_hook_body(erp.url + "/hook", ("start-handling",))).status_code == 200
    order_id = sb.create_orders(APP_KEY, 1)[0]
    erp.latency_ms = 600
    started = time.monotonic()
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/start-handling").status_code == 204
    assert time.monotonic() - started < 0.4
    assert erp.wait_for(2)[-1]["body"]["State"] == "start-handling"


def test_deleted_hook_gets_nothing(sb, vtex, erp):
    assert vtex.post("/api/orders/hook/config", json=_hook_body(erp.url + "/hook")).status_code == 200
    assert vtex.delete("/api/orders/hook/config").status_code == 200
    assert vtex.delete("/api/orders/hook/config").status_code == 404
    assert sb.hooks.wait_idle()
    attempts = sb.stats()["hook_attempts"]
    sb.create_orders(APP_KEY, 2)
    # create_orders hands every notification to the dispatcher before it returns: none was queued.
    assert sb.hooks.pending() == 0
    assert sb.stats()["hook_attempts"] == attempts
    assert len(erp.received) == 1      # only the ping
