"""Each fault switch does what it says, over real HTTP."""
import time

import pytest
import requests

from vtex_sandbox import FaultSwitches, Sandbox

APP_KEY = "vtexappkey-teststore-ABC"  # as set up in conftest.py


def test_duplicate_rate_enqueues_each_event_twice_with_the_same_event_id(sb, vtex):
    sb.faults.update({"duplicate_rate": 1.0})
    sb.create_orders(APP_KEY, 2)
    items = vtex.feed()
    assert len(items) == 4
    assert len({i["eventId"] for i in items}) == 2
    assert len({i["handle"] for i in items}) == 4
    vtex.commit([items[0]["handle"]])            # committing one copy leaves the other
    assert sb.feed_depth(APP_KEY) == 3


def test_duplicate_count_is_one_off(sb, vtex):
    sb.faults.update(duplicate_count=1)
    sb.create_orders(APP_KEY, 3)
    assert len(vtex.feed()) == 4
    assert sb.faults["duplicate_count"] == 0


def test_twin_rate_enqueues_one_change_under_two_event_ids(sb, vtex):
    sb.faults.update(twin_rate=1.0)
    order_id = sb.create_orders(APP_KEY, 1)[0]
    items = vtex.feed()
    assert len(items) == 2
    first, second = items
    assert first["eventId"] != second["eventId"]
    for key in ("orderId", "state", "lastState", "lastChange", "currentChange", "domain"):
        assert first[key] == second[key]
    assert first["orderId"] == order_id


def test_fifo_without_reorder_and_shuffled_with_it(sb, vtex):
    vtex.configure_feed(visibility=1)
    ids = sb.create_orders(APP_KEY, 10)
    assert [i["orderId"] for i in vtex.feed()] == ids
    sb.faults.update(reorder=True)
    seen_shuffled = False
    for _ in range(5):
        sb.advance_time(2)
        got = [i["orderId"] for i in vtex.feed()]
        assert sorted(got) == sorted(ids)
        seen_shuffled |= got != ids
    assert seen_shuffled


def test_partial_rate_returns_fewer_items_than_available(sb, vtex):
    sb.create_orders(APP_KEY, 5)
    sb.faults.update(partial_rate=1.0)
    for _ in range(5):
        assert len(vtex.feed(maxlot=10)) < 5
        sb.advance_time(300)
    sb.faults.update(partial_rate=0.0)
    sb.advance_time(300)
    assert len(vtex.feed(maxlot=10)) == 5


def test_partial_count_is_one_off(sb, vtex):
    sb.create_orders(APP_KEY, 6)
    sb.faults.update(partial_count=1)
    assert len(vtex.feed(maxlot=10)) < 6
    sb.advance_time(300)
    assert len(vtex.feed(maxlot=10)) == 6


def test_rate_limit_answers_429_with_retry_after_then_recovers(sb, vtex):
    order_id = sb.create_orders(APP_KEY, 1)[0]
    sb.faults.update(rate_limit={"route": "get_order", "count": 2, "retry_after": 7})
    for _ in range(2):
        limited = vtex.get(f"/api/oms/pvt/orders/{order_id}")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "7"
        assert vtex.get("/api/orders/feed/config").status_code == 200   # other routes unaffected
    assert vtex.get(f"/api/oms/pvt/orders/{order_id}").status_code == 200
    assert sb.faults["rate_limit"] is None                              # exhausted entries go away
    assert sb.stats()["calls"]["get_order"] == 3                         # limited calls are counted


def test_rate_limit_on_every_route_with_star(sb, vtex):
    sb.faults.update(rate_limit={"route": "*"})
    assert vtex.get("/api/orders/feed", params={"maxlot": 1}).status_code == 429
    assert vtex.get("/api/orders/feed/config").headers["Retry-After"] == "60"
    sb.faults.update(rate_limit=None)
    assert vtex.get("/api/orders/feed/config").status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error(sb, vtex, status):
    sb.create_orders(APP_KEY, 1)
    sb.faults.update(server_error={"route": "feed_retrieve", "count": 1, "status": status})
    failed = vtex.get("/api/orders/feed", params={"maxlot": 5})
    assert failed.status_code == status
    assert "error" in failed.json()
    assert len(vtex.feed()) == 1                # nothing was received by the failed call


def test_rate_zero_never_fires_and_partial_rate_fires_sometimes(sb, vtex):
    sb.faults.update(server_error={"route": "feed_config_get", "rate": 0.0})
    assert all(vtex.get("/api/orders/feed/config").status_code == 200 for _ in range(10))
    sb.faults.update(server_error={"route": "feed_config_get", "rate": 0.5})
    codes = [vtex.get("/api/orders/feed/config").status_code for _ in range(40)]
    assert 5 < codes.count(500) < 35 and 5 < codes.count(200) < 35


def test_slow_delays_only_the_chosen_route(sb, vtex):
    order_id = sb.create_orders(APP_KEY, 1)[0]
    sb.faults.update(slow={"route": "get_order", "delay_ms": 300})
    started = time.monotonic()
    assert vtex.get(f"/api/oms/pvt/orders/{order_id}").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    vtex.get("/api/orders/feed/config")
    assert time.monotonic() - started < 0.25


def test_global_latency_applies_to_every_vtex_call(sb, vtex):
    sb.faults.update(latency_ms=150)
    for path in ("/api/orders/feed/config", "/api/oms/pvt/orders"):
        started = time.monotonic()
        vtex.get(path)
        assert time.monotonic() - started >= 0.15


def test_drop_closes_the_connection_without_a_response(sb, vtex):
    sb.faults.update(drop={"route": "feed_retrieve", "count": 1})
    vtex.get("/api/orders/feed/config")   # a pooled keep-alive connection exists
    with pytest.raises(requests.exceptions.ConnectionError):
        vtex.get("/api/orders/feed", params={"maxlot": 1})
    assert vtex.get("/api/orders/feed", params={"maxlot": 1}).status_code == 200


def test_faults_over_the_control_api(sb, server, http):
    url = server.url + "/_sandbox/faults"
    merged = http.post(url, json={"duplicate_rate": 0.5, "slow": {"route": "cancel", "delay_ms": 10}}).json()
    assert merged["duplicate_rate"] == 0.5 and merged["slow"][0]["route"] == "cancel"
    http.post(url, json={"reorder": True})
    got = http.get(url).json()
    assert got["duplicate_rate"] == 0.5 and got["reorder"] is True   # merged, not replaced
    assert sb.faults["reorder"] is True
    bad = http.post(url, json={"dupliate_rate": 1})
    assert bad.status_code == 400 and "unknown fault switch" in bad.json()["error"]["message"]
    assert http.post(url, json={"server_error": {"route": "nope"}}).status_code == 400
    assert http.delete(url).json()["duplicate_rate"] == 0.0
    assert sb.faults["reorder"] is False


def test_control_api_is_never_faulted(sb, server, http):
    sb.faults.update(server_error={"route": "*"}, drop={"route": "*"})
    assert http.get(server.url + "/_sandbox/stats").status_code == 200


def test_fault_switch_validation_in_python():
    faults = FaultSwitches()
    with pytest.raises(ValueError):
        faults.update(nonsense=1)
    with pytest.raises(ValueError):
        faults.update(duplicate_rate=2)
    with pytest.raises(ValueError):
        faults.update(rate_limit={"route": "get_order", "bogus": 1})
    faults.update(server_error=[{"route": "get_order", "count": 1}, {"route": "cancel", "status": 503}])
    assert faults.route_fault("server_error", "list_orders") is None
    assert faults.route_fault("server_error", "get_order")["route"] == "get_order"
    assert faults.route_fault("server_error", "get_order") is None      # count used up
    assert faults.route_fault("server_error", "cancel")["status"] == 503


def test_fault_randomness_is_seeded():
    def run():
        sandbox = Sandbox(seed=42)
        sandbox.faults.update(partial_rate=0.5)
        return [sandbox.faults.fires("partial") for _ in range(30)]
    assert run() == run()
