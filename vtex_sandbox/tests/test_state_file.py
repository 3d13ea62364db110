"""The state file: stores, orders, feeds and hooks survive a restart; writes are atomic."""
import json
import signal
import subprocess
import sys
import time

import pytest

from vtex_sandbox import LoopbackERP, Sandbox, StateFileError

from .processes import ROOT, Served

SECOND = {"account_name": "secondstore", "app_key": "vtexappkey-secondstore-XYZ", "app_token": "second-token"}


def test_state_survives_close_and_reopen(tmp_path):
    path = tmp_path / "state.json"
    with LoopbackERP(port=0) as hook_receiver:
        hook_url = hook_receiver.url + "/hook"
        sb = Sandbox(seed=3, state_file=path)
        sb.add_account("s1", "k1", "t1")
        created = sb.create_orders("k1", 3)
        sb.hook_config_save("k1", {"filter": {"type": "FromWorkflow", "status": ["invoiced"]},
                                   "hook": {"url": hook_url, "headers": {"X-Test": "1"}}})
        first = sb.feed_retrieve("k1", 1)          # one item in flight, two still visible
        sb.close()

    saved = json.loads(path.read_text())
    assert saved["format"] == 1 and sorted(saved["orders"]) == sorted(created)

    again = Sandbox(seed=3, state_file=path)
    try:
        assert again.restored
        assert [a.app_key for a in again.accounts()] == ["k1"]
        assert again.authenticate("k1", "t1") is not None
        assert [o["orderId"] for o in again.orders("k1")] == created
        assert again.hook_config_get("k1")["hook"] == {"url": hook_url, "headers": {"X-Test": "1"}}
        assert again.feed_config_get("k1")["quantity"] == 3
        assert len(again.feed_retrieve("k1", 10)) == 2          # the in-flight item stays invisible
        assert again.feed_commit("k1", {"handles": [first[0]["handle"]]}) == 1   # its handle still commits
        more = again.create_orders("k1", 2)
        assert not set(more) & set(created)
        assert [o["sequence"] for o in again.orders("k1")][-1] == str(int(again.orders("k1")[0]["sequence"]) + 4)
        event_ids = [e["eventId"] for e in again.feed_retrieve("k1", 10)]
        assert len(event_ids) == len(set(event_ids)) == 2       # new events, new ids
    finally:
        again.close()


@pytest.mark.slow
def test_an_unusable_state_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(StateFileError, match="not valid JSON"):
        Sandbox(state_file=path)
    path.write_text(json.dumps({"something": "else"}))
    with pytest.raises(StateFileError, match="not a vtex_sandbox state"):
        Sandbox(state_file=path)
    assert path.read_text() == json.dumps({"something": "else"})
    done = subprocess.run([sys.executable, "-m", "vtex_sandbox", "--port", "0", "--state-file", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "not a vtex_sandbox state" in done.stderr


def test_writes_replace_the_file_atomically(tmp_path):
    path = tmp_path / "state.json"
    sb = Sandbox(state_file=path, save_interval_s=3600)     # only explicit saves in this test
    try:
        sb.add_account("s1", "k1", "t1")
        assert sb.save_state() is True
        inode = path.stat().st_ino
        assert sb.save_state() is False                      # nothing changed: no write
        sb.create_orders("k1", 1)
        assert sb.save_state() is True
        assert path.stat().st_ino != inode                   # a new file renamed over the old one
        assert [p.name for p in tmp_path.iterdir()] == ["state.json"]   # no temporary file left
    finally:
        sb.close()


def _orders(http, url, app_key):
    response = http.get(url + "/_sandbox/orders", params={"app_key": app_key}, timeout=10)
    assert response.status_code == 200, response.text
    return [o["orderId"] for o in response.json()]


@pytest.mark.slow
def test_command_keeps_stores_and_orders_across_a_restart(tmp_path, http):
    state = tmp_path / "var" / "sandbox-state.json"
    args = ("--state-file", str(state), "--initial-orders", "3", "--orders-per-minute", "0")
    first = Served("vtex_sandbox", *args)
    try:
        demo_orders = _orders(http, first.url, "vtexappkey-demostore-SANDBOX")
        assert len(demo_orders) == 3
        assert http.post(first.url + "/_sandbox/accounts", json=SECOND, timeout=10).status_code == 201
        second_orders = http.post(first.url + "/_sandbox/orders", json={"app_key": SECOND["app_key"], "count": 2},
                                  timeout=10).json()["order_ids"]
    finally:
        code, output = first.stop(signal.SIGTERM)
    assert code == 0, output

    again = Served("vtex_sandbox", *args)
    try:
        assert _orders(http, again.url, "vtexappkey-demostore-SANDBOX") == demo_orders   # no new initial orders
        assert _orders(http, again.url, SECOND["app_key"]) == second_orders
        headers = {"X-VTEX-API-AppKey": SECOND["app_key"], "X-VTEX-API-AppToken": SECOND["app_token"]}
        items = http.get(again.url + "/api/orders/feed", params={"maxlot": 10}, headers=headers, timeout=10).json()
        assert sorted(i["orderId"] for i in items) == sorted(second_orders)
    finally:
        code, output = again.stop(signal.SIGTERM)
    assert code == 0, output
    assert "state restored from" in output and "2 store(s), 5 order(s)" in output


@pytest.mark.slow
def test_changes_reach_the_file_without_a_clean_stop(tmp_path, http):
    state = tmp_path / "sandbox-state.json"
    args = ("--state-file", str(state), "--initial-orders", "0", "--orders-per-minute", "0")
    first = Served("vtex_sandbox", *args)
    try:
        created = http.post(first.url + "/_sandbox/orders", json={"app_key": "vtexappkey-demostore-SANDBOX",
                                                                  "count": 2}, timeout=10).json()["order_ids"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if state.exists() and sorted(json.loads(state.read_text())["orders"]) == sorted(created):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the state file did not get the new orders within 10 s")
    finally:
        first.proc.kill()                                    # no chance to save at exit
        first.proc.wait(timeout=10)
    again = Served("vtex_sandbox", *args)
    try:
        assert _orders(http, again.url, "vtexappkey-demostore-SANDBOX") == created
    finally:
        again.stop()
