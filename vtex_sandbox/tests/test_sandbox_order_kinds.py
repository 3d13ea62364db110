"""Order kinds (marketplace, seller, split, pickup, gift card), FromOrders filters evaluated with
JSONata (single fire), the JSONata test endpoint, VTEX's feed bounds and TRACE."""
import json
import re

import pytest

from vtex_sandbox import Sandbox
from vtex_sandbox.order_kinds import ORDER_KINDS

from .conftest import APP_KEY, STORE

ALL_CREATION = ["order-created", "payment-pending", "payment-approved", "window-to-cancel", "ready-for-handling"]


def _adds_up(order):
    totals = {t["id"]: t["value"] for t in order["totals"]}
    assert order["value"] == sum(totals.values()) > 0
    assert totals["Shipping"] == sum(e["price"] for e in order["shippingData"]["logisticsInfo"])
    active = [t for t in order["paymentData"]["transactions"] if t["isActive"]]
    assert sum(p["value"] for t in active for p in t["payments"]) == order["value"]


@pytest.mark.parametrize("kind", ORDER_KINDS)
def test_every_kind_is_self_consistent(sb, kind):
    for order_id in sb.create_orders(APP_KEY, 3, kind=kind):
        _adds_up(sb.order(APP_KEY, order_id))


def test_a_marketplace_order_names_its_marketplace_and_is_sold_by_the_account(sb):
    order = sb.order(APP_KEY, sb.create_orders(APP_KEY, 1, kind="marketplace")[0])
    assert re.fullmatch(r"SBM-\d{10}", order["marketplaceOrderId"])
    assert (order["affiliateId"], order["salesChannel"], order["marketplace"]["name"]) == ("SBM", "2", "sandboxmarketplace")
    assert {i["seller"] for i in order["items"]} == {"1"}
    assert sb.events(order["orderId"])[0]["domain"] == "Fulfillment"


def test_a_seller_order_is_slr_sold_by_the_other_seller_in_the_marketplace_domain(sb, vtex):
    order_id = sb.create_orders(APP_KEY, 1, kind="seller", seller_id="acmeseller", seller_name="ACME")[0]
    order = sb.order(APP_KEY, order_id)
    assert re.fullmatch(r"SLR-\d{13}-01", order_id) and order["orderGroup"] == order_id[:-3]
    assert {i["seller"] for i in order["items"]} == {"acmeseller"}
    assert [(s["id"], s["name"]) for s in order["sellers"]] == [("acmeseller", "ACME")]
    assert [(i["orderId"], i["domain"]) for i in vtex.feed()] == [(order_id, "Marketplace")]
    assert vtex.get(f"/api/oms/pvt/orders/{order_id}").json()["orderId"] == order_id


def test_a_split_purchase_is_two_orders_of_one_group(sb):
    first, second = sb.create_orders(APP_KEY, 1, kind="split")
    group = first[:-3]
    assert (first, second) == (f"{group}-01", f"{group}-02")
    one, two = sb.order(APP_KEY, first), sb.order(APP_KEY, second)
    assert one["orderGroup"] == two["orderGroup"] == group
    assert {i["seller"] for i in one["items"]} == {"1"} and {i["seller"] for i in two["items"]} == {"sandboxseller1"}
    assert [e["domain"] for e in sb.events(first)][:1] == ["Fulfillment"]
    assert [e["domain"] for e in sb.events(second)][:1] == ["Marketplace"]
    both_own = sb.create_orders(APP_KEY, 1, kind="split", split_sellers=["1", "1"])
    assert {i["seller"] for oid in both_own for i in sb.order(APP_KEY, oid)["items"]} == {"1"}


def test_a_pickup_order_is_collected_at_a_pickup_point(sb):
    order = sb.order(APP_KEY, sb.create_orders(APP_KEY, 1, kind="pickup")[0])
    assert order["shippingData"]["address"]["addressType"] == "pickup"
    for line in order["shippingData"]["logisticsInfo"]:
        assert line["deliveryChannel"] == "pickup-in-point" and line["price"] == 0
        assert line["pickupStoreInfo"]["isPickupStore"] is True and line["pickupStoreInfo"]["friendlyName"]
        assert line["pickupPointId"].startswith("1_")
        assert line["slas"][0]["id"] == line["selectedSla"]
    assert {t["id"]: t["value"] for t in order["totals"]}["Shipping"] == 0


def test_a_gift_card_pays_part_or_all_of_the_order(sb):
    order = sb.order(APP_KEY, sb.create_orders(APP_KEY, 1, kind="gift_card", gift_card_amount=500)[0])
    card = order["paymentData"]["giftCards"][0]
    payments = order["paymentData"]["transactions"][0]["payments"]
    assert card["value"] == 500 and card["inUse"] is True
    assert [p["group"] for p in payments][0] == "giftCard" and payments[0]["value"] == 500
    assert sum(p["value"] for p in payments) == order["value"]
    whole = sb.order(APP_KEY, sb.create_orders(APP_KEY, 1, kind="gift_card", gift_card_amount=10**9)[0])
    assert [p["group"] for p in whole["paymentData"]["transactions"][0]["payments"]] == ["giftCard"]


def test_the_control_api_creates_every_kind(sb, server, http):
    response = http.post(f"{server.url}/_sandbox/orders", json={"app_key": APP_KEY, "kind": "seller",
                                                               "seller_id": "s9", "count": 2}, timeout=10)
    assert response.status_code == 200, response.text
    ids = response.json()["order_ids"]
    assert len(ids) == 2 and all(i.startswith("SLR-") for i in ids)
    bad = http.post(f"{server.url}/_sandbox/orders", json={"app_key": APP_KEY, "kind": "nonsense"}, timeout=10)
    assert bad.status_code == 400 and "kind must be one of" in bad.json()["error"]["message"]


def test_kinds_survive_the_state_file(tmp_path):
    path = tmp_path / "state.json"
    first = Sandbox(seed=3, state_file=path)
    first.add_account(STORE, APP_KEY, "t")
    seller_order = first.create_orders(APP_KEY, 1, kind="seller", status="payment-pending")[0]
    first.close()
    again = Sandbox(seed=3, state_file=path)
    try:
        again.set_status(APP_KEY, seller_order, "ready-for-handling")
        assert again.events(seller_order)[-1]["domain"] == "Marketplace"
    finally:
        again.close()


# --- FromOrders ------------------------------------------------------------------------------------
def test_from_orders_single_fire_passes_an_order_once(sb, vtex):
    vtex.configure_feed({"type": "FromOrders", "expression": "value > 50000", "disableSingleFire": False})
    ids = sb.create_orders(APP_KEY, 12)
    above = {oid for oid in ids if sb.order(APP_KEY, oid)["value"] > 50000}  # cents: R$ 500
    assert above and above != set(ids)  # the seed gives both kinds
    for oid in ids:
        sb.set_status(APP_KEY, oid, "handling")
    items = vtex.feed(10) + vtex.feed(10)
    assert sorted(i["orderId"] for i in items) == sorted(above)  # once each, at the first match
    assert {i["state"] for i in items} == {"order-created"}


def test_from_orders_without_single_fire_passes_every_matching_change(sb, vtex):
    vtex.configure_feed({"type": "FromOrders", "expression": 'status = "ready-for-handling" or status = "handling"',
                         "disableSingleFire": True})
    order_id = sb.create_orders(APP_KEY, 1)[0]
    sb.set_status(APP_KEY, order_id, "handling")
    sb.set_status(APP_KEY, order_id, "invoiced")
    assert [i["state"] for i in vtex.feed()] == ["ready-for-handling", "handling"]


def test_a_from_orders_expression_that_fails_to_evaluate_passes_nothing(sb, vtex):
    vtex.configure_feed({"type": "FromOrders", "expression": '$number("x") > 1'})
    sb.create_orders(APP_KEY, 2)
    assert vtex.feed() == []


def test_a_from_orders_hook_fires_once_per_order(sb, vtex, erp):
    body = {"filter": {"type": "FromOrders", "expression": 'status = "ready-for-handling"', "disableSingleFire": False},
            "hook": {"url": erp.url + "/hook", "headers": {"key": "k"}}}
    assert vtex.post("/api/orders/hook/config", json=body).status_code == 200
    order_id = sb.create_orders(APP_KEY, 1)[0]
    sb.set_status(APP_KEY, order_id, "payment-approved")
    sb.set_status(APP_KEY, order_id, "ready-for-handling")
    assert sb.hooks.wait_idle(10)
    notes = [r["body"] for r in erp.received if r["body"].get("OrderId") == order_id]
    assert [(n["State"], n["Domain"]) for n in notes] == [("ready-for-handling", "Fulfillment")]


# --- the JSONata test endpoint ------------------------------------------------------------------------
def test_the_jsonata_endpoint_answers_true_or_false(sb, vtex):
    order = sb.order(APP_KEY, sb.create_orders(APP_KEY, 1)[0])
    url = "/api/orders/expressions/jsonata"
    ask = lambda expression, document: vtex.post(url, json={"Expression": expression, "Document": document})
    assert ask(f"value = {order['value']}", json.dumps(order)).json() is True
    assert ask('status = "canceled"', json.dumps(order)).json() is False
    assert ask("items.quantity", json.dumps(order)).json() is False  # true only for the value true
    assert ask("value >", "{}").status_code == 400
    assert ask("value > 1", "{not json").status_code == 400
    assert vtex.post(url, json={"Expression": "value > 1", "Document": {"value": 2}}).status_code == 400
    assert vtex.post(url, json={"expression": "value > 1", "document": '{"value": 2}'}).json() is True
    assert vtex.post(url, json={"Expression": "1", "Document": "{}"}, headers={"X-VTEX-API-AppToken": "x"}).status_code == 401


# --- bounds and TRACE ----------------------------------------------------------------------------------
@pytest.mark.parametrize("visibility,retention", [(0, 345600), (43200, 1209600)])
def test_vtex_bounds_are_accepted_at_their_edges(vtex, visibility, retention):
    vtex.configure_feed(visibility=visibility, retention=retention)
    assert vtex.get("/api/orders/feed/config").json()["queue"] == {
        "visibilityTimeoutInSeconds": visibility, "messageRetentionPeriodInSeconds": retention}


def test_trace_is_refused_with_json_not_html(server, http):
    response = http.request("TRACE", server.url + "/api/orders/feed", headers={"X-VTEX-API-AppToken": "secret"}, timeout=10)
    assert response.status_code == 405
    assert response.headers["Content-Type"].startswith("application/json")
    assert "secret" not in response.text and response.json()["error"]["message"].startswith("Method TRACE")
