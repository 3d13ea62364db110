"""The sandbox's way back: VTEX's invoice notification, tracking number, tracking status (delivery
events), with VTEX's validation and effects on the order.

- An invoice is taken only for an order in handling (or already invoiced: the same invoiceNumber
  again overwrites it, with a new receipt). Output invoices covering the order's value move it
  to ``invoice`` then ``invoiced`` (feed events follow); less than that leaves it partially
  invoiced in handling, which VTEX will not cancel (400).
- Invoices are listed on the order under ``packageAttachment.packages``.
- Tracking (PATCH) and delivery events (PUT .../tracking) need the invoice to exist (404).

Mixed into ``Sandbox``; relies on its lock, records and transitions.
"""
import copy
from datetime import date, datetime

from .util import hex_id, iso_offset
from .vtex_api import _body_object, vtex_error

INVOICEABLE = ("handling", "invoice", "invoiced")
INVOICE_REQUIRED = ("type", "issuanceDate", "invoiceNumber", "invoiceValue", "items")
TRACKING_REQUIRED = ("trackingNumber", "trackingUrl", "courier", "dispatchedDate")
DELIVERY_REQUIRED = ("isDelivered", "deliveredDate", "events")


def _is_date(value):
    if not isinstance(value, str) or not value.strip():
        return False
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # .NET writes 7 fractional digits
        head, _, tail = text.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = head + "." + tail[:min(digits, 6)] + tail[digits:]
    try:
        (date if len(text) == 10 else datetime).fromisoformat(text)
    except ValueError:
        return False
    return True


def _cents(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def validate_invoice(body):
    body = _body_object(body)
    for name in INVOICE_REQUIRED:
        if body.get(name) in (None, ""):
            raise vtex_error(400, "1", f"The field {name} is required.")
    if body["type"] not in ("Output", "Input"):
        raise vtex_error(400, "1", "type must be Output or Input.")
    if not _is_date(body["issuanceDate"]):
        raise vtex_error(400, "1", "issuanceDate is not a valid date.")
    value = _cents(body["invoiceValue"])
    if value is None or value <= 0:
        raise vtex_error(400, "1", "invoiceValue must be an amount in cents greater than 0.")
    items = body["items"]
    if not isinstance(items, list) or not items:
        raise vtex_error(400, "1", "items must list the invoiced SKUs.")
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise vtex_error(400, "1", f"items[{n}].id is required.")
        if _cents(item.get("price")) is None or not isinstance(item.get("quantity"), int) or item["quantity"] < 1:
            raise vtex_error(400, "1", f"items[{n}] needs an integer price (cents) and quantity.")
    return body, value


class InvoicesMixin:
    def invoice(self, app_key, order_id, body):
        body, value = validate_invoice(body)
        with self._lock:
            record = self._record(app_key, order_id)
            data = record["data"]
            if data["status"] not in INVOICEABLE:
                raise vtex_error(400, "1", f"Order {data['orderId']} is '{data['status']}': it can be invoiced only in handling.")
            packages = data.setdefault("packageAttachment", {}).setdefault("packages", [])
            package = {
                "type": body["type"], "invoiceNumber": str(body["invoiceNumber"]), "invoiceValue": value,
                "issuanceDate": body["issuanceDate"], "invoiceKey": body.get("invoiceKey"), "invoiceUrl": body.get("invoiceUrl"),
                "embeddedInvoice": body.get("embeddedInvoice") or "", "courier": body.get("courier") or "",
                "trackingNumber": body.get("trackingNumber") or "", "trackingUrl": body.get("trackingUrl") or "",
                "dispatchedDate": body.get("dispatchedDate"),
                "items": [{"itemIndex": n, "id": i["id"], "quantity": i["quantity"], "price": _cents(i["price"])}
                          for n, i in enumerate(body["items"])],
                "courierStatus": None,
            }
            # The same invoiceNumber again overwrites (VTEX answers with a new receipt).
            packages[:] = [p for p in packages if p["invoiceNumber"] != package["invoiceNumber"]] + [package]
            self._invoices_ok[data["orderId"]] += 1
            invoiced = sum(p["invoiceValue"] for p in packages if p["type"] == "Output")
            if data["status"] == "handling" and invoiced >= data["value"]:
                self._transition_locked(record, "invoice")
                self._transition_locked(record, "invoiced")
            return self._receipt_locked(record)

    def _package_locked(self, record, invoice_number):
        for package in record["data"].get("packageAttachment", {}).get("packages", []):
            if package["invoiceNumber"] == invoice_number:
                return package
        raise vtex_error(404, "1", f"Invoice {invoice_number} not found on order {record['data']['orderId']}")

    def invoice_tracking(self, app_key, order_id, invoice_number, body):
        body = _body_object(body)
        for name in TRACKING_REQUIRED:
            if name not in body:
                raise vtex_error(400, "1", f"The field {name} is required.")
        if not isinstance(body["trackingNumber"], str) or not body["trackingNumber"]:
            raise vtex_error(400, "1", "trackingNumber is required.")
        with self._lock:
            record = self._record(app_key, order_id)
            package = self._package_locked(record, invoice_number)
            for name in TRACKING_REQUIRED:
                package[name] = body[name]
            return self._receipt_locked(record)

    def invoice_delivery(self, app_key, order_id, invoice_number, body):
        body = _body_object(body)
        for name in DELIVERY_REQUIRED:
            if name not in body:
                raise vtex_error(400, "1", f"The field {name} is required.")
        if not isinstance(body["isDelivered"], bool) or not isinstance(body["events"], list):
            raise vtex_error(400, "1", "isDelivered must be a boolean and events a list.")
        with self._lock:
            record = self._record(app_key, order_id)
            package = self._package_locked(record, invoice_number)
            package["courierStatus"] = {"finished": body["isDelivered"], "deliveredDate": body["deliveredDate"],
                                        "data": copy.deepcopy(body["events"])}
            return self._receipt_locked(record)

    def partially_invoiced(self, record):
        """Output invoices exist but do not cover the order: VTEX refuses to cancel it (400)."""
        data = record["data"]
        packages = data.get("packageAttachment", {}).get("packages", [])
        return data["status"] not in ("invoice", "invoiced") and any(p["type"] == "Output" for p in packages)

    def _receipt_locked(self, record):
        return {"date": iso_offset(self.now()), "orderId": record["data"]["orderId"], "receipt": hex_id(self._id_rng).lower()}
