"""The sandbox's way back: VTEX's invoice, tracking and delivery calls, with VTEX's validation and effects."""
import pytest

TRACKING = {"trackingNumber": "TRK-1", "trackingUrl": "https://carrier.example/t/TRK-1", "courier": "Carrier",
            "dispatchedDate": "2026-12-02T12:00:00+00:00"}
DELIVERY = {"isDelivered": True, "deliveredDate": "2026-12-03 21:15",
            "events": [{"city": "Rio de Janeiro", "state": "RJ", "description": "Coletado", "date": "2026-12-02"}]}


def order_in_handling(sb, vtex):
    order_id = sb.create_orders("vtexappkey-teststore-ABC", 1)[0]
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/start-handling").status_code == 204
    return order_id, sb.order("vtexappkey-teststore-ABC", order_id)


def body_for(order, number="NF-1", value=None):
    items = [{"id": i["id"], "price": i["sellingPrice"], "quantity": i["quantity"]} for i in order["items"]]
    return {"type": "Output", "issuanceDate": "2026-12-02T10:00:00-03:00", "invoiceNumber": number,
            "invoiceValue": order["value"] if value is None else value, "items": items}


def test_an_invoice_moves_the_order_to_invoiced_lists_it_and_emits_the_events(sb, vtex):
    order_id, order = order_in_handling(sb, vtex)
    response = vtex.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=body_for(order))
    assert response.status_code == 200 and response.json()["orderId"] == order_id and response.json()["receipt"]
    now = vtex.get(f"/api/oms/pvt/orders/{order_id}").json()
    assert now["status"] == "invoiced" and now["invoicedDate"]
    [package] = now["packageAttachment"]["packages"]
    assert package["invoiceNumber"] == "NF-1" and package["invoiceValue"] == order["value"]
    assert [e["state"] for e in sb.events(order_id)][-2:] == ["invoice", "invoiced"]
    # Tracking and delivery events are stored on the invoice.
    assert vtex.request("PATCH", f"/api/oms/pvt/orders/{order_id}/invoice/NF-1", json=TRACKING).status_code == 200
    assert vtex.request("PUT", f"/api/oms/pvt/orders/{order_id}/invoice/NF-1/tracking", json=DELIVERY).status_code == 200
    package = vtex.get(f"/api/oms/pvt/orders/{order_id}").json()["packageAttachment"]["packages"][0]
    assert package["trackingNumber"] == "TRK-1" and package["courierStatus"]["finished"] is True
    # The same invoice number again overwrites, with a new receipt.
    again = vtex.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=body_for(order))
    assert again.status_code == 200 and again.json()["receipt"] != response.json()["receipt"]
    assert len(vtex.get(f"/api/oms/pvt/orders/{order_id}").json()["packageAttachment"]["packages"]) == 1
    # Once invoiced, VTEX does not cancel.
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/cancel", json={}).status_code == 403


def test_a_partially_invoiced_order_stays_in_handling_and_cannot_be_canceled(sb, vtex):
    order_id, order = order_in_handling(sb, vtex)
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=body_for(order, value=100)).status_code == 200
    assert vtex.get(f"/api/oms/pvt/orders/{order_id}").json()["status"] == "handling"
    refused = vtex.post(f"/api/oms/pvt/orders/{order_id}/cancel", json={"reason": "x"})
    assert refused.status_code == 400 and "partially invoiced" in refused.json()["error"]["message"]


@pytest.mark.parametrize("change, message", [
    (lambda b: b.pop("items"), "items"),
    (lambda b: b.update(invoiceValue=0), "invoiceValue"),
    (lambda b: b.update(issuanceDate="soon"), "issuanceDate"),
    (lambda b: b.update(type="Sale"), "type"),
])
def test_vtex_validation_of_the_invoice(sb, vtex, change, message):
    order_id, order = order_in_handling(sb, vtex)
    body = body_for(order)
    change(body)
    response = vtex.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=body)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_no_invoice_before_handling_and_no_tracking_without_its_invoice(sb, vtex):
    order_id = sb.create_orders("vtexappkey-teststore-ABC", 1)[0]
    order = sb.order("vtexappkey-teststore-ABC", order_id)
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=body_for(order)).status_code == 400
    assert vtex.request("PATCH", f"/api/oms/pvt/orders/{order_id}/invoice/NF-9", json=TRACKING).status_code == 404


def test_faults_apply_to_the_new_routes(sb, vtex):
    order_id, order = order_in_handling(sb, vtex)
    sb.faults.update(rate_limit={"route": "invoice", "count": 1, "retry_after": 7})
    limited = vtex.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=body_for(order))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    sb.faults.update(server_error={"route": "invoice_tracking", "count": 1, "status": 503})
    assert vtex.post(f"/api/oms/pvt/orders/{order_id}/invoice", json=body_for(order)).status_code == 200
    assert vtex.request("PATCH", f"/api/oms/pvt/orders/{order_id}/invoice/NF-1", json=TRACKING).status_code == 503
    assert vtex.request("PATCH", f"/api/oms/pvt/orders/{order_id}/invoice/NF-1", json=TRACKING).status_code == 200
    # The stats count the invoice calls that took effect per order; the 429 is a call, not an invoice.
    assert sb.stats()["invoices_ok"] == {order_id: 1}
    assert sb.stats()["calls"]["invoice"] == 2
