"""Call statistics (per route, sliding 60 s maximum), the stats/control API and the commands."""
import io
import re
import threading
import time

import pytest
from django.core.management import CommandError, call_command

from integration.sandbox import Sandbox

APP_KEY = "vtexappkey-teststore-ABC"  # as set up in conftest.py


def test_calls_are_counted_per_route(sb, vtex, http):
    order_id = sb.create_orders(APP_KEY, 1)[0]
    for _ in range(3):
        vtex.get(f"/api/oms/pvt/orders/{order_id}")
    vtex.get("/api/orders/feed", params={"maxlot": 10})
    http.get(vtex.base + "/api/orders/feed/config")               # unauthorized calls count too
    vtex.get("/_sandbox/stats")                                    # the control API does not
    stats = sb.stats()
    assert stats["calls"] == {"get_order": 3, "feed_retrieve": 1, "feed_config_get": 1}
    assert stats["retrieved"] == 1 and stats["committed"] == 0
    assert stats["feed_depth"] == 1 and stats["enqueued"] == 1
    assert stats["statuses"] == {order_id: "ready-for-handling"}


def test_max_per_minute_is_a_sliding_60_second_window(sb, vtex):
    for _ in range(3):
        vtex.get("/api/orders/feed/config")
    sb.advance_time(61)
    for _ in range(2):
        vtex.get("/api/orders/feed/config")
    assert sb.stats()["max_per_minute"]["feed_config_get"] == 3
    sb.advance_time(30)
    for _ in range(2):
        vtex.get("/api/orders/feed/config")           # 4 calls within the last 60 s now
    stats = sb.stats()
    assert stats["max_per_minute"]["feed_config_get"] == 4
    assert stats["calls"]["feed_config_get"] == 7


def test_stats_and_reset_over_the_control_api(sb, vtex, server, http):
    ids = sb.create_orders(APP_KEY, 2)
    vtex.commit(i["handle"] for i in vtex.feed())
    vtex.post(f"/api/oms/pvt/orders/{ids[0]}/start-handling")
    stats = http.get(server.url + "/_sandbox/stats").json()
    assert stats["committed"] == 2 and stats["retrieved"] == 2
    assert stats["start_handling_ok"] == {ids[0]: 1}
    assert stats["statuses"][ids[0]] == "handling"
    assert stats["calls"]["feed_commit"] == 1
    assert http.post(server.url + "/_sandbox/reset-stats").status_code == 200
    after = http.get(server.url + "/_sandbox/stats").json()
    assert after["calls"] == {} and after["committed"] == 0 and after["start_handling_ok"] == {}
    assert after["statuses"][ids[0]] == "handling"                  # state is kept


def test_accounts_and_time_over_the_control_api(sb, server, http, client_for):
    created = http.post(server.url + "/_sandbox/accounts",
                        json={"account_name": "newstore", "app_key": "vtexappkey-new", "app_token": "tok"})
    assert created.status_code == 201
    client = client_for("vtexappkey-new", "tok")
    order_ids = http.post(server.url + "/_sandbox/orders", json={"app_key": "vtexappkey-new", "count": 1}
                          ).json()["order_ids"]
    assert client.get(f"/api/oms/pvt/orders/{order_ids[0]}").json()["hostname"] == "newstore"
    assert client_for("vtexappkey-new", "bad").get("/api/orders/feed/config").status_code == 401
    assert http.post(server.url + "/_sandbox/accounts", json={"account_name": "x"}).status_code == 400
    before = sb.now()
    http.post(server.url + "/_sandbox/advance-time", json={"seconds": 100})
    assert sb.now() - before >= 100
    events = http.get(server.url + "/_sandbox/events", params={"order_id": order_ids[0]}).json()
    assert [e["state"] for e in events][-1] == "ready-for-handling"
    assert http.get(server.url + "/_sandbox/nope").status_code == 404


def test_unknown_routes_and_methods(vtex):
    assert vtex.get("/api/nothing").status_code == 404
    wrong = vtex.request("PUT", "/api/orders/feed")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]


def test_concurrent_clients_are_consistent(sb, vtex, server):
    import requests
    vtex.configure_feed(visibility=60)
    sb.create_orders(APP_KEY, 40)
    seen, errors = [], []

    def worker():
        session = requests.Session()
        session.trust_env = False
        for _ in range(10):
            response = session.get(server.url + "/api/orders/feed", params={"maxlot": 3}, headers=vtex.headers)
            if response.status_code != 200:
                errors.append(response.status_code)
            seen.extend(i["eventId"] for i in response.json())
        session.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(seen) == len(set(seen)) == 40        # nothing handed out twice while invisible
    assert sb.stats()["calls"]["feed_retrieve"] == 60


@pytest.mark.parametrize("command", ["vtex_sandbox", "loopback_erp"])
def test_commands_refuse_to_start_without_debug(settings, command):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="allow-production"):
        call_command(command, port=0, run_seconds=0)


def test_vtex_sandbox_command_serves_the_sandbox(settings, http):
    settings.DEBUG = True
    out = io.StringIO()
    thread = threading.Thread(target=call_command, args=("vtex_sandbox",), kwargs=dict(
        port=0, run_seconds=1.0, initial_orders=2, orders_per_minute=0, seed=5, stdout=out))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while "listening on" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        url = re.search(r"listening on (http://\S+)", out.getvalue()).group(1)
        headers = {"X-VTEX-API-AppKey": "vtexappkey-demostore-SANDBOX", "X-VTEX-API-AppToken": "sandbox-token-not-secret"}
        items = http.get(url + "/api/orders/feed", params={"maxlot": 10}, headers=headers, timeout=5).json()
        assert len(items) == 2
    finally:
        thread.join()


def test_loopback_erp_command_serves(settings, http):
    settings.DEBUG = True
    out = io.StringIO()
    thread = threading.Thread(target=call_command, args=("loopback_erp",),
                              kwargs=dict(port=0, run_seconds=0.8, allow_production=True, stdout=out))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while "listening on" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        url = re.search(r"listening on (http://\S+)", out.getvalue()).group(1)
        assert http.post(url + "/orders", json={"x": 1}, timeout=5).json() == {"id": "ERP-1"}
    finally:
        thread.join()


def test_sandbox_is_plain_python():
    """Importable and usable with no Django settings, and no sandbox module imports Django."""
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parents[2]
    code = ("from integration.sandbox import Sandbox, SandboxServer, LoopbackERP\n"
            "sb = Sandbox(seed=1); sb.add_account('s', 'k', 't'); assert len(sb.create_orders('k', 2)) == 2\n"
            "srv = SandboxServer(sb).start(); srv.stop(); LoopbackERP().start().stop(); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin"}, cwd=str(root))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    for source in (root / "integration" / "sandbox").glob("*.py"):
        text = source.read_text()
        assert "import django" not in text and "from django" not in text, source.name
