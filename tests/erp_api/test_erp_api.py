"""The inbound ERP API: auth, validation (400 naming the field), idempotency, unknown orders."""
import json

import pytest

from integration.models import ErpToken, Order, UpdateStatus, VtexUpdate
from tests.fake_vtex_updates import DELIVERY, TRACKING, invoice_body

pytestmark = pytest.mark.django_db
BASE = "/erp-api/teststore/api/oms/pvt/orders"


def post(client, path, body, token, method="post"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return getattr(client, method)(path, data=json.dumps(body) if not isinstance(body, (bytes, str)) else body,
                                   content_type="application/json", **headers)


def test_an_invoice_is_stored_and_answered_202_before_any_call_to_vtex(client, token, handled_order, oms):
    response = post(client, f"{BASE}/1001-01/invoice", invoice_body(), token)
    assert response.status_code == 202, response.content
    data = response.json()
    assert data["status"] == "queued" and data["kind"] == "invoice" and data["invoiceNumber"] == "NF-1"
    update = VtexUpdate.objects.get(pk=data["id"])
    assert update.order == handled_order and update.body["invoiceValue"] == "5970" and update.source == "api"
    assert oms.count("invoice") == 0


def test_the_same_update_again_is_200_with_the_same_id_and_one_row(client, token, handled_order, oms):
    first = post(client, f"{BASE}/1001-01/invoice", invoice_body(), token).json()
    # Key order and spacing do not make another update.
    again = post(client, f"{BASE}/1001-01/invoice", json.dumps(dict(reversed(list(invoice_body().items())))), token)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert VtexUpdate.objects.count() == 1


def test_another_body_before_it_was_sent_replaces_it_and_after_it_was_sent_is_a_correction(client, token, handled_order, oms):
    first = post(client, f"{BASE}/1001-01/invoice", invoice_body(value=100), token).json()
    replaced = post(client, f"{BASE}/1001-01/invoice", invoice_body(value=200), token)
    assert replaced.status_code == 202 and replaced.json()["id"] == first["id"] and replaced.json()["replaced"]
    assert VtexUpdate.objects.get().body["invoiceValue"] == "200"  # VTEX's spec: a string of cents
    VtexUpdate.objects.update(status=UpdateStatus.SENT)
    correction = post(client, f"{BASE}/1001-01/invoice", invoice_body(value=300), token)
    assert correction.status_code == 202
    data = correction.json()
    assert data["id"] != first["id"] and data["correctionOf"] == first["id"] and data["status"] == "queued"
    assert VtexUpdate.objects.count() == 2


@pytest.mark.parametrize("change, field", [
    (lambda b: b.pop("items"), "items"),
    (lambda b: b.update(items=[]), "items"),
    (lambda b: b.update(invoiceValue=0), "invoiceValue"),
    (lambda b: b.update(invoiceValue="24.99"), "invoiceValue"),
    (lambda b: b.update(invoiceValue=12.5), "invoiceValue"),
    (lambda b: b["items"][1].update(price="10"), "items[1].price"),
    (lambda b: b["items"][0].pop("quantity"), "items[0].quantity"),
    (lambda b: b.update(issuanceDate="yesterday"), "issuanceDate"),
    (lambda b: b.update(type="Sale"), "type"),
    (lambda b: b.update(invoiceNumbr="x"), "invoiceNumbr"),
    (lambda b: b.update(invoiceNumber="A\x00B"), "invoiceNumber"),
])
def test_an_invalid_invoice_is_400_naming_the_field_and_nothing_is_stored(client, token, handled_order, change, field):
    body = invoice_body()
    change(body)
    response = post(client, f"{BASE}/1001-01/invoice", body, token)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert field in response.json()["error"]
    assert not VtexUpdate.objects.exists()


def test_the_cents_are_sent_as_vtex_types_them_whichever_form_the_erp_used(client, token, handled_order, oms):
    first = post(client, f"{BASE}/1001-01/invoice", invoice_body(value=5970), token).json()
    again = post(client, f"{BASE}/1001-01/invoice", invoice_body(value="5970"), token)
    assert again.status_code == 200 and again.json()["id"] == first["id"]  # one update, not a replacement
    assert VtexUpdate.objects.get().body["invoiceValue"] == "5970"


def test_a_null_vtex_does_not_allow_is_left_out_and_one_it_allows_is_kept(client, token, handled_order, oms):
    body = invoice_body(courier=None, invoiceUrl=None)
    body["items"][0]["description"] = None
    assert post(client, f"{BASE}/1001-01/invoice", body, token).status_code == 202
    stored = VtexUpdate.objects.get().body
    assert "courier" not in stored and "description" not in stored["items"][0]  # not nullable in VTEX's spec
    assert stored["invoiceUrl"] is None  # nullable in VTEX's spec


@pytest.mark.parametrize("field", ["city", "state", "description", "date"])
def test_a_delivery_event_without_a_field_vtex_requires_is_400(client, token, handled_order, field):
    body = json.loads(json.dumps(DELIVERY))
    del body["events"][0][field]
    response = post(client, f"{BASE}/1001-01/invoice/NF-1/tracking", body, token, method="put")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == f"events[0].{field}"
    assert not VtexUpdate.objects.exists()


@pytest.mark.parametrize("path", ["/erp-api/teststore/api/oms/pvt/orders//invoice", "/erp-api/teststore/nothing-here",
                                  "/erp-api/teststore/api/oms/pvt/orders/1001-01/invoice/"])
def test_a_path_the_api_does_not_have_is_a_json_404(client, token, path):
    response = client.post(path, data="{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")
    assert "no such path" in response.json()["error"]


def test_not_json_is_400(client, token, handled_order):
    for raw in ("{", "[]", '"x"', "null", "{" * 5000 + "}" * 5000):
        response = post(client, f"{BASE}/1001-01/invoice", raw, token)
        assert response.status_code == 400, (raw[:10], response.content[:200])
    assert not VtexUpdate.objects.exists()


def test_tracking_delivery_and_cancel_paths(client, token, handled_order, oms):
    post(client, f"{BASE}/1001-01/invoice", invoice_body(), token)
    t = post(client, f"{BASE}/1001-01/invoice/NF-1", TRACKING, token, method="patch")
    d = post(client, f"{BASE}/1001-01/invoice/NF-1/tracking", DELIVERY, token, method="put")
    assert t.status_code == 202 and t.json()["kind"] == "tracking" and t.json()["invoiceNumber"] == "NF-1"
    assert d.status_code == 202 and d.json()["kind"] == "delivery"
    bad = post(client, f"{BASE}/1001-01/invoice/NF-1", {**TRACKING, "trackingNumber": None}, token, method="patch")
    assert bad.status_code == 400 and bad.json()["field"] == "trackingNumber"
    oms.add("1002-01", "handling")
    c = post(client, f"{BASE}/1002-01/cancel", {"reason": "out of stock"}, token)
    assert c.status_code == 202 and c.json()["kind"] == "cancel"
    empty = post(client, f"{BASE}/1002-01/cancel", {"reason": "out of stock"}, token)
    assert empty.status_code == 200


def test_a_cancel_of_an_invoiced_order_is_refused_with_a_reason(client, token, handled_order):
    Order.objects.filter(pk=handled_order.pk).update(vtex_status="invoiced")
    response = post(client, f"{BASE}/1001-01/cancel", {}, token)
    assert response.status_code == 409 and "invoiced" in response.json()["error"]
    assert not VtexUpdate.objects.exists()


def test_auth_answers(client, token, binding, handled_order, make_account):
    path = f"{BASE}/1001-01/invoice"
    assert post(client, path, invoice_body(), None).status_code == 401
    assert post(client, path, invoice_body(), "vhub_not-a-token").status_code == 401
    assert post(client, "/erp-api/nostore/api/oms/pvt/orders/1001-01/invoice", invoice_body(), token).status_code == 404
    other = make_account(name="Other", account_name="otherstore", app_key="vtexappkey-other")
    assert post(client, "/erp-api/otherstore/api/oms/pvt/orders/1001-01/invoice", invoice_body(), token).status_code == 403
    ErpToken.objects.update(revoked_at="2026-12-01T00:00:00Z")
    assert post(client, path, invoice_body(), token).status_code == 403
    assert not VtexUpdate.objects.exists()
    assert other.pk


def test_several_tokens_and_only_a_hash_is_stored(binding):
    one = ErpToken.issue(binding)[1]
    two = ErpToken.issue(binding)[1]
    assert one != two
    for row in ErpToken.objects.all():
        assert one not in row.token_hash and two not in row.token_hash and len(row.hint) < 12


def test_an_order_the_hub_never_saw_is_fetched_from_vtex_first(client, token, oms):
    oms.add("2001-01", "handling")
    response = post(client, f"{BASE}/2001-01/invoice", invoice_body(), token)
    assert response.status_code == 202
    assert Order.objects.get(order_id="2001-01").vtex_status == "handling"
    missing = post(client, f"{BASE}/9999-01/invoice", invoice_body(), token)
    assert missing.status_code == 404 and "9999-01" in missing.json()["error"]


def test_vtex_down_while_checking_an_unknown_order_is_503_not_500(client, token, vtex):
    import re

    vtex.add("GET", re.compile(r".*/api/oms/pvt/orders/3001-01$"), status=500)
    response = post(client, f"{BASE}/3001-01/invoice", invoice_body(), token)
    assert response.status_code == 503 and not VtexUpdate.objects.exists()


def test_get_update_state(client, token, handled_order, binding, make_account):
    created = post(client, f"{BASE}/1001-01/invoice", invoice_body(), token).json()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    state = client.get(f"/erp-api/teststore/updates/{created['id']}", **headers)
    assert state.status_code == 200 and state.json()["status"] == "queued" and state.json()["attempts"] == 0
    assert client.get("/erp-api/teststore/updates/999999", **headers).status_code == 404
    assert client.get(f"/erp-api/teststore/updates/{created['id']}").status_code == 401


def test_openapi_document_and_docs_page(client):
    doc = client.get("/erp-api/openapi.json")
    assert doc.status_code == 200
    spec = doc.json()
    paths = spec["paths"]
    assert "/erp-api/{store}/api/oms/pvt/orders/{order_id}/invoice" in paths
    assert "patch" in paths["/erp-api/{store}/api/oms/pvt/orders/{order_id}/invoice/{invoice_number}"]
    assert "put" in paths["/erp-api/{store}/api/oms/pvt/orders/{order_id}/invoice/{invoice_number}/tracking"]
    schema = spec["components"]["schemas"]["InvoiceBody"]
    assert set(schema["required"]) >= {"type", "issuanceDate", "invoiceNumber", "invoiceValue", "items"}
    assert client.get("/erp-api/docs").status_code == 200


def test_issue_erp_token_command_prints_a_working_token_once(client, binding, handled_order, oms):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out, err = StringIO(), StringIO()
    call_command("issue_erp_token", "teststore", "--binding", "ERP", "--name", "SAP", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith("vhub_") and token not in err.getvalue()
    assert ErpToken.objects.get().name == "SAP"
    assert post(client, f"{BASE}/1001-01/invoice", invoice_body(), token).status_code == 202
    with pytest.raises(CommandError, match="no adapter binding named"):
        call_command("issue_erp_token", "teststore", "--binding", "nope", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="No store"):
        call_command("issue_erp_token", "nostore", stdout=StringIO(), stderr=StringIO())
