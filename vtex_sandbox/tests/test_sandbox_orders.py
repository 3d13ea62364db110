"""Orders: realistic and self-consistent documents, OMS routes, status changes and the generator."""
import re
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from vtex_sandbox import ApiError, Sandbox
from vtex_sandbox.util import parse_iso

APP_KEY = "vtexappkey-teststore-ABC"  # as set up in conftest.py


def _check_order(order, account):
    totals = {t["id"]: t["value"] for t in order["totals"]}
    assert set(totals) == {"Items", "Discounts", "Shipping", "Tax"}
    assert all(isinstance(v, int) for v in totals.values())
    assert 1 <= len(order["items"]) <= 4
    assert totals["Items"] == sum(i["sellingPrice"] * i["quantity"] for i in order["items"])
    assert totals["Discounts"] <= 0 and totals["Tax"] == 0
    logistics = order["shippingData"]["logisticsInfo"]
    assert [entry["itemIndex"] for entry in logistics] == list(range(len(order["items"])))
    assert totals["Shipping"] == sum(entry["price"] for entry in logistics)
    assert all(entry["shippingEstimate"] == "3bd" or entry["selectedSla"] != "Normal" for entry in logistics)
    assert order["value"] == sum(totals.values()) > 0
    assert order["paymentData"]["transactions"][0]["payments"][0]["value"] == order["value"]
    for item in order["items"]:
        assert 1 <= item["quantity"] <= 3
        assert item["listPrice"] >= item["price"] == item["sellingPrice"] > 0
        assert item["seller"] == "1" and item["measurementUnit"] == "un" and item["unitMultiplier"] == 1
        for key in ("id", "productId", "refId", "name", "imageUrl", "uniqueId"):
            assert item[key]
    assert re.fullmatch(r"\d{13}-01", order["orderId"])
    assert order["hostname"] == account and order["origin"] == "Marketplace"
    assert (order["marketplaceOrderId"], order["affiliateId"], order["salesChannel"]) == ("", "", "1")
    assert order["storePreferencesData"]["currencyCode"] == "BRL"
    client = order["clientProfileData"]
    assert client["documentType"] == "cpf" and re.fullmatch(r"\d{11}", client["document"])
    assert "@" in client["email"] and client["firstName"] and client["lastName"] and client["phone"]
    address = order["shippingData"]["address"]
    assert address["country"] == "BRA"
    for key in ("receiverName", "postalCode", "city", "state", "street", "number", "neighborhood"):
        assert address[key]
    assert "complement" in address


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_generated_orders_add_up(seed):
    sandbox = Sandbox(seed=seed)
    sandbox.add_account("propstore", "k", "t", feed_config=None)
    sandbox.create_orders("k", 3)
    for order in sandbox.orders("k"):
        _check_order(order, "propstore")


def test_orders_are_deterministic_per_seed():
    def make():
        sandbox = Sandbox(seed=7)
        sandbox.add_account("s", "k", "t")
        sandbox.create_orders("k", 3)
        return [(o["orderId"], o["value"], o["clientProfileData"]["document"]) for o in sandbox.orders("k")]
    assert make() == make()
    other = Sandbox(seed=8)
    other.add_account("s", "k", "t")
    other.create_orders("k", 3)
    assert [o["orderId"] for o in other.orders("k")] != [m[0] for m in make()]


def test_some_orders_carry_a_coupon_discount():
    sandbox = Sandbox(seed=3)
    sandbox.add_account("s", "k", "t", feed_config=None)
    sandbox.create_orders("k", 40)
    discounted = [o for o in sandbox.orders("k") if o["totals"][1]["value"] < 0]
    assert discounted and all(o["marketingData"]["coupon"] for o in discounted)


def test_get_order_over_http(sb, vtex):
    order_id = sb.create_orders(APP_KEY, 1)[0]
    response = vtex.get(f"/api/oms/pvt/orders/{order_id}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    order = response.json()
    _check_order(order, "teststore")
    assert order["status"] == "ready-for-handling" and order["authorizedDate"]
    assert vtex.get(f"/api/oms/pvt/orders/seq{order['sequence']}").json()["orderId"] == order_id
    missing = vtex.get("/api/oms/pvt/orders/0000000000000-01")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "OMS001"
    assert missing.json()["error"]["message"] == "Order not found"


def test_create_orders_walks_the_creation_path(sb):
    order_id = sb.create_orders(APP_KEY, 1)[0]
    assert [e["state"] for e in sb.events(order_id)] == [
        "order-created", "payment-pending", "payment-approved", "window-to-cancel", "ready-for-handling"]
    stuck = sb.create_orders(APP_KEY, 1, status="payment-pending")[0]
    assert sb.order_status(APP_KEY, stuck) == "payment-pending"


def test_start_handling_204_then_409_and_the_order_moves_to_handling(sb, vtex):
    vtex.configure_feed({"type": "FromWorkflow", "status": ["start-handling", "handling"]})
    order_id = sb.create_orders(APP_KEY, 1)[0]
    ok = vtex.post(f"/api/oms/pvt/orders/{order_id}/start-handling")
    assert ok.status_code == 204 and ok.content == b""
    again = vtex.post(f"/api/oms/pvt/orders/{order_id}/start-handling")
    assert again.status_code == 409
    assert again.json() == {"error": {"code": "OMS003", "message":
                                      "Order status should be ready-for-handling to perform this action",
                                      "exception": None}}
    assert sb.order_status(APP_KEY, order_id) == "handling"
    assert [(i["lastState"], i["state"]) for i in vtex.feed()] == [
        ("ready-for-handling", "start-handling"), ("start-handling", "handling")]
    stats = sb.stats()
    assert stats["start_handling_calls"] == {order_id: 2}
    assert stats["start_handling_ok"] == {order_id: 1}


def test_start_handling_requires_ready_for_handling(sb, vtex):
    order_id = sb.create_orders(APP_KEY, 1, status="payment-approved")[0]
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/start-handling").status_code == 409
    assert sb.order_status(APP_KEY, order_id) == "payment-approved"
    assert vtex.post("/api/oms/pvt/orders/0000000000000-01/start-handling").status_code == 404


def test_handling_delay(sb, vtex):
    sb.faults.update(handling_delay_ms=200)
    order_id = sb.create_orders(APP_KEY, 1)[0]
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/start-handling").status_code == 204
    assert sb.order_status(APP_KEY, order_id) == "start-handling"
    deadline = time.monotonic() + 3
    while sb.order_status(APP_KEY, order_id) != "handling" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sb.order_status(APP_KEY, order_id) == "handling"


def test_cancel_over_http(sb, vtex):
    order_id = sb.create_orders(APP_KEY, 1)[0]
    vtex.commit(i["handle"] for i in vtex.feed())
    response = vtex.post(f"/api/oms/pvt/orders/{order_id}/cancel", json={"reason": "out of stock"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"date", "orderId", "receipt"} and body["orderId"] == order_id and body["receipt"]
    order = vtex.get(f"/api/oms/pvt/orders/{order_id}").json()
    assert order["status"] == "canceled" and order["cancelReason"] == "out of stock"
    assert [e["state"] for e in sb.events(order_id)][-2:] == ["cancel", "canceled"]
    assert [(i["state"], i["lastState"]) for i in vtex.feed()] == [("canceled", "cancel")]
    repeat = vtex.post(f"/api/oms/pvt/orders/{order_id}/cancel")       # idempotent, no new events
    assert repeat.status_code == 200 and repeat.json()["receipt"] == body["receipt"]
    assert len(sb.events(order_id)) == 7


def test_cancel_refused_when_invoiced(sb, vtex):
    order_id = sb.create_orders(APP_KEY, 1)[0]
    sb.set_status(APP_KEY, order_id, "invoiced")
    response = vtex.post(f"/api/oms/pvt/orders/{order_id}/cancel")
    assert response.status_code == 403
    assert response.json()["error"]["message"]
    assert sb.order_status(APP_KEY, order_id) == "invoiced"
    with pytest.raises(ApiError):
        sb.cancel_order_by_customer(APP_KEY, order_id)


def test_customer_cancel_and_set_status_emit_events(sb, vtex, server, http):
    first, second = sb.create_orders(APP_KEY, 2)
    vtex.commit(i["handle"] for i in vtex.feed())
    sb.cancel_order_by_customer(APP_KEY, first)
    assert sb.order_status(APP_KEY, first) == "canceled"
    response = http.post(f"{server.url}/_sandbox/orders/{second}/customer-cancel")
    assert response.status_code == 200 and response.json()["orderId"] == second
    assert [i["orderId"] for i in vtex.feed()] == [first, second]
    sb.set_status(APP_KEY, first, "invoiced")
    assert sb.events(first)[-1]["state"] == "invoiced" and sb.events(first)[-1]["lastState"] == "canceled"
    assert sb.order(APP_KEY, first)["invoicedDate"]
    assert http.post(f"{server.url}/_sandbox/orders/nope-01/customer-cancel").status_code == 404


def test_list_orders_paging_and_filters(sb, vtex):
    ids = sb.create_orders(APP_KEY, 23)
    sb.set_status(APP_KEY, ids[0], "invoiced")
    page = vtex.get("/api/oms/pvt/orders", params={"per_page": 10, "page": 3}).json()
    assert page["paging"] == {"total": 23, "pages": 3, "currentPage": 3, "perPage": 10}
    assert [row["orderId"] for row in page["list"]] == ids[:3][::-1]    # newest first by default
    assert "stats" in page
    row = page["list"][-1]
    assert {"orderId", "creationDate", "status", "totalValue", "sequence"} <= set(row)
    default = vtex.get("/api/oms/pvt/orders").json()
    assert default["paging"]["perPage"] == 15 and len(default["list"]) == 15
    asc = vtex.get("/api/oms/pvt/orders", params={"orderBy": "creationDate,asc", "per_page": 100}).json()
    assert [r["orderId"] for r in asc["list"]] == ids
    invoiced = vtex.get("/api/oms/pvt/orders", params={"f_status": "invoiced"}).json()
    assert [r["orderId"] for r in invoiced["list"]] == [ids[0]]
    assert vtex.get("/api/oms/pvt/orders", params={"f_status": "invoiced,ready-for-handling"}
                    ).json()["paging"]["total"] == 23
    created = [o["creationDate"] for o in sb.orders(APP_KEY)]
    assert created == sorted(created) and len(set(created)) == 23
    window = f"creationDate:[{created[5]} TO {created[9]}]"
    dated = vtex.get("/api/oms/pvt/orders", params={"f_creationDate": window, "per_page": 100}).json()
    assert sorted(r["orderId"] for r in dated["list"]) == sorted(ids[5:10])
    assert parse_iso(created[5]) < parse_iso(created[9])


@pytest.mark.parametrize("params", [{"per_page": 101}, {"per_page": 0}, {"page": 31}, {"page": "x"},
                                    {"f_creationDate": "creationDate:[nonsense]"}])
def test_list_orders_rejects_bad_paging(vtex, params):
    assert vtex.get("/api/oms/pvt/orders", params=params).status_code == 400


def test_generator_creates_orders_at_the_given_rate(sb):
    sb.start_generator(APP_KEY, orders_per_minute=600)    # one every 0.1 s
    time.sleep(0.45)
    sb.stop_generator()
    made = len(sb.orders(APP_KEY))
    assert 2 <= made <= 6
    # stop_generator joins the generator's thread: once it is gone, nothing can add an order.
    assert not [t for t in threading.enumerate() if t.name.startswith("sandbox-generator-") and t.is_alive()]
    assert len(sb.orders(APP_KEY)) == made


def test_control_api_orders(sb, server, http):
    created = http.post(server.url + "/_sandbox/orders", json={"app_key": APP_KEY, "count": 3})
    assert created.status_code == 200
    ids = created.json()["order_ids"]
    assert len(ids) == 3
    listed = http.get(server.url + "/_sandbox/orders", params={"app_key": APP_KEY}).json()
    assert [o["orderId"] for o in listed] == ids
    assert http.post(server.url + "/_sandbox/orders", json={"app_key": "unknown", "count": 1}).status_code == 404
    assert http.post(server.url + "/_sandbox/orders", json={"count": 1}).status_code == 400
