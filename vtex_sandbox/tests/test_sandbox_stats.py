"""Call statistics (per route, sliding 60 s maximum), the stats/control API, and no Django anywhere."""
import re
import threading

import pytest

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


@pytest.mark.slow
def test_sandbox_is_plain_python():
    """Importable and usable with no Django installed or configured, and no sandbox module imports Django."""
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parents[2]
    code = ("import sys; sys.modules['django'] = None  # any Django import now fails\n"
            "from vtex_sandbox import Sandbox, SandboxServer, LoopbackERP\n"
            "sb = Sandbox(seed=1); sb.add_account('s', 'k', 't'); assert len(sb.create_orders('k', 2)) == 2\n"
            "srv = SandboxServer(sb).start(); srv.stop(); LoopbackERP().start().stop(); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin"}, cwd=str(root))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    for source in (root / "vtex_sandbox").rglob("*.py"):  # its tests too: they must run without Django
        hub_import = re.search(r"^\s*(import|from)\s+(django|integration|hub_bench)\b", source.read_text(), re.M)
        assert hub_import is None, f"{source}: {hub_import.group(0)}"
