"""Feed v3 over real HTTP: auth, config, maxlot, visibility, retention, commit and handles."""
import re
import time

import pytest

STORE, APP_KEY = "teststore", "vtexappkey-teststore-ABC"  # as set up in conftest.py

UNAUTHORIZED = {"error": {"code": "1", "message": "Unauthorized access", "exception": None}}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
ALL_CREATION = ["order-created", "payment-pending", "payment-approved", "window-to-cancel", "ready-for-handling"]


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/orders/feed?maxlot=1"), ("POST", "/api/orders/feed"), ("GET", "/api/orders/feed/config"),
    ("GET", "/api/oms/pvt/orders"), ("GET", "/api/orders/hook/config"),
    ("POST", "/api/oms/pvt/orders/1-01/start-handling"),
])
def test_every_vtex_route_requires_matching_key_and_token(vtex, http, client_for, method, path):
    no_headers = http.request(method, vtex.base + path, timeout=5)
    assert no_headers.status_code == 401
    assert no_headers.json() == UNAUTHORIZED
    assert no_headers.headers["Content-Type"].startswith("application/json")
    wrong = client_for(APP_KEY, "wrong-token").request(method, path)
    assert wrong.status_code == 401
    assert wrong.json() == UNAUTHORIZED


def test_good_credentials_pass_and_the_app_key_picks_the_store(sb, vtex, client_for):
    sb.add_account("otherstore", app_key="vtexappkey-other", app_token="other-token")
    mine = sb.create_orders(APP_KEY, 1)[0]
    other = client_for("vtexappkey-other", "other-token")
    assert vtex.get(f"/api/oms/pvt/orders/{mine}", headers={"Host": "otherstore.vtexcommercestable.com.br"}
                    ).status_code == 200
    missing = other.get(f"/api/oms/pvt/orders/{mine}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "OMS001"
    assert other.feed() == []  # the other app key has its own (empty) feed


def test_new_account_has_the_default_feed_config(sb, vtex):
    sb.create_orders(APP_KEY, 2)
    body = vtex.get("/api/orders/feed/config").json()
    assert body["filter"] == {"type": "FromWorkflow", "status": ["ready-for-handling", "canceled"]}
    assert body["queue"] == {"visibilityTimeoutInSeconds": 250, "messageRetentionPeriodInSeconds": 345600}
    assert body["quantity"] == 2
    assert body["approximateAgeOfOldestMessageInSeconds"] >= 0


def test_feed_config_save_get_delete(sb, vtex):
    vtex.configure_feed({"type": "FromWorkflow", "status": ALL_CREATION}, visibility=30, retention=400000)
    got = vtex.get("/api/orders/feed/config").json()
    assert got["filter"]["status"] == ALL_CREATION
    assert got["queue"] == {"visibilityTimeoutInSeconds": 30, "messageRetentionPeriodInSeconds": 400000}
    assert vtex.delete("/api/orders/feed/config").status_code == 200
    assert vtex.get("/api/orders/feed/config").status_code == 404
    assert vtex.get("/api/orders/feed", params={"maxlot": 5}).status_code == 404
    assert vtex.delete("/api/orders/feed/config").status_code == 404
    sb.create_orders(APP_KEY, 1)          # made while no feed exists: never delivered (no backfill)
    vtex.configure_feed()
    assert vtex.feed() == []
    sb.create_orders(APP_KEY, 1)
    assert len(vtex.feed()) == 1


def test_queue_keys_are_case_insensitive(vtex):
    body = {"filter": {"type": "FromOrders", "expression": "value > 100", "disableSingleFire": False},
            "queue": {"VisibilityTimeoutInSeconds": 11, "messageretentionperiodinseconds": 400000}}
    assert vtex.post("/api/orders/feed/config", json=body).status_code == 200
    got = vtex.get("/api/orders/feed/config").json()
    assert got["queue"] == {"visibilityTimeoutInSeconds": 11, "messageRetentionPeriodInSeconds": 400000}
    assert got["filter"]["expression"] == "value > 100"


@pytest.mark.parametrize("body,status", [
    ({"filter": {"type": "FromWorkflow", "status": ["canceled"], "expression": "x"}, "queue": None}, 409),
    ({"filter": {"type": "FromWorkflow", "disableSingleFire": True}, "queue": None}, 409),
    ({"filter": {"type": "FromOrders", "expression": "x", "status": ["canceled"]}, "queue": None}, 409),
    ({"filter": {"type": "Whatever"}, "queue": None}, 400),
    ({"queue": None}, 400),
    ({"filter": {"type": "FromWorkflow", "status": ["canceled"]}}, 400),
    ({"filter": {"type": "FromWorkflow"}, "queue": {"visibilityTimeoutInSeconds": 1}}, 400),
    ({"filter": {"type": "FromWorkflow"}, "queue": {"visibilityTimeoutInSeconds": "1",
                                                    "MessageRetentionPeriodInSeconds": 5}}, 400),
    ({"filter": {"type": "FromWorkflow"}, "queue": {"visibilityTimeoutInSeconds": 1,
                                                    "MessageRetentionPeriodInSeconds": 1209601}}, 400),
    # VTEX's bounds: retention 4 to 14 days, visibility at most 12 h.
    ({"filter": {"type": "FromWorkflow"}, "queue": {"visibilityTimeoutInSeconds": 1,
                                                    "MessageRetentionPeriodInSeconds": 345599}}, 400),
    ({"filter": {"type": "FromWorkflow"}, "queue": {"visibilityTimeoutInSeconds": 1,
                                                    "MessageRetentionPeriodInSeconds": 1}}, 400),
    ({"filter": {"type": "FromWorkflow"}, "queue": {"visibilityTimeoutInSeconds": 43201,
                                                    "MessageRetentionPeriodInSeconds": 345600}}, 400),
    ({"filter": {"type": "FromWorkflow"}, "queue": {"visibilityTimeoutInSeconds": -1,
                                                    "MessageRetentionPeriodInSeconds": 345600}}, 400),
    ({"filter": {"type": "FromOrders", "expression": "value >"}, "queue": None}, 400),
    ({"filter": {"type": "FromOrders", "expression": ""}, "queue": None}, 400),
    ({"filter": {"type": "FromOrders", "expression": "value > 1", "disableSingleFire": "no"}, "queue": None}, 400),
])
def test_feed_config_validation(vtex, body, status):
    if "queue" in body and body["queue"] is None:
        body["queue"] = {"visibilityTimeoutInSeconds": 250, "MessageRetentionPeriodInSeconds": 345600}
    response = vtex.post("/api/orders/feed/config", json=body)
    assert response.status_code == status, response.text
    assert "message" in response.json()["error"]
    # nothing was saved: the default config is still there
    assert vtex.get("/api/orders/feed/config").json()["filter"]["status"] == ["ready-for-handling", "canceled"]


def test_feed_config_bad_json_is_400(vtex):
    response = vtex.post("/api/orders/feed/config", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_account_without_feed_config(sb, client_for):
    sb.add_account("nofeed", app_key="vtexappkey-nofeed", app_token="t", feed_config=None)
    client = client_for("vtexappkey-nofeed", "t")
    sb.create_orders("vtexappkey-nofeed", 1)
    assert client.get("/api/orders/feed/config").status_code == 404
    assert client.get("/api/orders/feed", params={"maxlot": 1}).status_code == 404


@pytest.mark.parametrize("params", [{}, {"maxlot": "0"}, {"maxlot": "11"}, {"maxlot": "abc"}, {"maxlot": ""}])
def test_maxlot_out_of_bounds_is_400(sb, vtex, params):
    sb.create_orders(APP_KEY, 1)
    assert vtex.get("/api/orders/feed", params=params).status_code == 400
    assert vtex.get("/api/orders/feed/config").json()["quantity"] == 1


def test_maxlot_limits_the_lot(sb, vtex):
    sb.create_orders(APP_KEY, 12)
    assert len(vtex.feed(maxlot=1)) == 1
    assert len(vtex.feed(maxlot=10)) == 10
    assert len(vtex.feed(maxlot=10)) == 1


def test_feed_item_shape_and_default_filter(sb, vtex):
    ids = sb.create_orders(APP_KEY, 3)
    items = vtex.feed()
    assert [i["orderId"] for i in items] == ids  # FIFO by default
    for item in items:
        assert list(item) == ["eventId", "handle", "domain", "state", "lastState", "orderId", "lastChange",
                              "currentChange"]
        assert all(isinstance(v, str) for v in item.values())
        assert item["domain"] == "Fulfillment"
        assert (item["state"], item["lastState"]) == ("ready-for-handling", "window-to-cancel")
        assert TS.match(item["lastChange"]) and TS.match(item["currentChange"])
        assert item["lastChange"] < item["currentChange"]
        assert len(item["handle"]) > 300 and re.fullmatch(r"[A-Za-z0-9_.=+/-]+", item["handle"])
    assert len({i["eventId"] for i in items}) == 3


def test_from_workflow_with_every_status_sees_the_whole_walk(sb, vtex):
    vtex.configure_feed({"type": "FromWorkflow", "status": ALL_CREATION})
    order_id = sb.create_orders(APP_KEY, 1)[0]
    items = vtex.feed()
    assert [i["state"] for i in items] == ALL_CREATION
    assert [i["lastState"] for i in items] == [""] + ALL_CREATION[:-1]
    assert {i["orderId"] for i in items} == {order_id}
    for before, after in zip(items, items[1:]):
        assert after["lastChange"] == before["currentChange"]


def test_from_orders_passes_the_changes_its_expression_matches(sb, vtex):
    vtex.configure_feed({"type": "FromOrders", "expression": "status = \"canceled\""})
    order_id = sb.create_orders(APP_KEY, 1)[0]
    sb.set_status(APP_KEY, order_id, "invoiced")
    assert vtex.feed() == []
    sb.set_status(APP_KEY, order_id, "canceled")
    assert [i["state"] for i in vtex.feed()] == ["canceled"]


@pytest.mark.slow
def test_visibility_timeout_with_a_real_wait(sb, vtex):
    vtex.configure_feed(visibility=1)
    sb.create_orders(APP_KEY, 3)
    first = vtex.feed()
    assert len(first) == 3
    assert vtex.feed() == []                      # invisible while being processed
    assert vtex.get("/api/orders/feed/config").json()["quantity"] == 3  # but still in the feed
    time.sleep(1.15)
    again = vtex.feed()
    assert [i["eventId"] for i in again] == [i["eventId"] for i in first]
    assert not {i["handle"] for i in again} & {i["handle"] for i in first}


def test_visibility_timeout_with_advance_time(sb, vtex):
    sb.create_orders(APP_KEY, 2)          # default visibility 250 s
    assert len(vtex.feed()) == 2
    sb.advance_time(249)
    assert vtex.feed() == []
    sb.advance_time(2)
    assert len(vtex.feed()) == 2


def test_commit_removes_only_the_committed_messages(sb, vtex):
    vtex.configure_feed(visibility=5)
    sb.create_orders(APP_KEY, 4)
    items = vtex.feed()
    vtex.commit([items[0]["handle"], items[2]["handle"], "not-a-handle", 12])
    assert vtex.get("/api/orders/feed/config").json()["quantity"] == 2
    assert sb.stats()["committed"] == 2
    sb.advance_time(6)
    assert [i["eventId"] for i in vtex.feed()] == [items[1]["eventId"], items[3]["eventId"]]


def test_commit_requires_a_handles_list(vtex):
    assert vtex.post("/api/orders/feed", json={"nope": []}).status_code == 400
    assert vtex.post("/api/orders/feed", data=b"[", headers={"Content-Type": "application/json"}).status_code == 400


def test_new_handle_per_receive_and_old_handle_still_commits(sb, vtex):
    vtex.configure_feed(visibility=10)
    sb.create_orders(APP_KEY, 1)
    old = vtex.feed()[0]
    sb.advance_time(11)
    new = vtex.feed()[0]
    assert new["eventId"] == old["eventId"] and new["handle"] != old["handle"]
    vtex.commit([old["handle"]])
    assert vtex.get("/api/orders/feed/config").json()["quantity"] == 0
    sb.advance_time(11)
    assert vtex.feed() == []
    vtex.commit([new["handle"]])                  # already gone: ignored, still 200
    assert sb.stats()["committed"] == 1


def test_retention_drops_uncommitted_messages(sb, vtex):
    vtex.configure_feed(visibility=1, retention=345600)  # VTEX's minimum: 4 days
    sb.create_orders(APP_KEY, 2)
    vtex.feed()                                  # received, never committed
    sb.advance_time(300000)
    sb.create_orders(APP_KEY, 1)
    cfg = vtex.get("/api/orders/feed/config").json()
    assert cfg["quantity"] == 3
    assert cfg["approximateAgeOfOldestMessageInSeconds"] >= 300000
    sb.advance_time(45601)                       # the first two are just over 4 days old now
    assert vtex.get("/api/orders/feed/config").json()["quantity"] == 1
    assert len(vtex.feed()) == 1
    assert sb.stats()["feed_depth"] == 1


def test_reconfiguring_keeps_queued_events(sb, vtex):
    sb.create_orders(APP_KEY, 2)
    vtex.configure_feed({"type": "FromWorkflow", "status": ["handling"]})
    assert len(vtex.feed()) == 2
    order_id = sb.create_orders(APP_KEY, 1)[0]
    assert sb.feed_depth(APP_KEY) == 2            # ready-for-handling no longer passes the filter
    sb.set_status(APP_KEY, order_id, "handling")
    assert sb.feed_depth(APP_KEY) == 3


def test_each_app_key_of_a_store_has_its_own_feed(sb, vtex, client_for):
    sb.add_account(STORE, app_key="vtexappkey-second", app_token="second")
    second = client_for("vtexappkey-second", "second")
    sb.create_orders(APP_KEY, 2)
    mine = vtex.feed()
    vtex.commit(i["handle"] for i in mine)
    theirs = second.feed()
    assert [i["orderId"] for i in theirs] == [i["orderId"] for i in mine]
    assert {i["eventId"] for i in theirs}.isdisjoint({i["eventId"] for i in mine})
