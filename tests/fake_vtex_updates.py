"""A fake VTEX for the way back, and the bodies the tests send."""
import json
import re

from tests.fake_feed import BASE
from tests.fake_oms import FakeOms, make_order
from tests.vtex_spec import assert_request_matches_spec


class FakeVtexUpdates(FakeOms):
    """FakeOms plus VTEX's four calls of the way back, with VTEX's effects on the order's status."""

    def __init__(self, rsps, base=BASE):
        super().__init__(rsps, base)
        self.invoices = {}       # order id -> {invoice number: body}
        self.calls = []          # (route, order id, invoice number or "", body)
        self.spec_violations = []  # requests that VTEX's published spec does not allow (checked at teardown)
        self.answer = {}         # route -> list of (status, body) to answer before succeeding
        order = r"/api/oms/pvt/orders/([^/]+)"
        rsps.add_callback("POST", re.compile(re.escape(base) + order + r"/invoice$"), callback=self._invoice)
        rsps.add_callback("PATCH", re.compile(re.escape(base) + order + r"/invoice/([^/]+)$"), callback=self._tracking)
        rsps.add_callback("PUT", re.compile(re.escape(base) + order + r"/invoice/([^/]+)/tracking$"), callback=self._delivery)
        rsps.add_callback("POST", re.compile(re.escape(base) + order + r"/cancel$"), callback=self._cancel)

    def _scripted(self, route):
        queue = self.answer.get(route) or []
        return queue.pop(0) if queue else None

    def _receipt(self, order_id):
        return 200, {}, json.dumps({"date": "2026-12-02T10:00:00+00:00", "orderId": order_id, "receipt": f"r{len(self.calls)}"})

    def _parts(self, request):
        m = re.search(r"/api/oms/pvt/orders/([^/]+)(?:/invoice/([^/]+))?", request.url)
        return m.group(1), m.group(2) or ""

    def _record(self, route, request):
        try:
            assert_request_matches_spec(request)
        except Exception as exc:  # recorded, not raised: the hub would take it for VTEX's answer
            self.spec_violations.append(f"{request.method} {request.url}: {exc}")
        order_id, number = self._parts(request)
        body = json.loads(request.body) if request.body else None
        with self.lock:
            self.calls.append((route, order_id, number, body))
        return order_id, number, body

    def _invoice(self, request):
        order_id, _, body = self._record("invoice", request)
        scripted = self._scripted("invoice")
        if scripted:
            return scripted[0], {}, json.dumps(scripted[1])
        with self.lock:
            if self.statuses.get(order_id) not in ("handling", "invoiced"):
                return 400, {}, json.dumps({"error": {"code": "1", "message": f"Order status is {self.statuses.get(order_id)}"}})
            self.invoices.setdefault(order_id, {})[body["invoiceNumber"]] = dict(body)
            if body["type"] == "Output":
                self.statuses[order_id] = "invoiced"
        return self._receipt(order_id)

    def _tracking(self, request):
        order_id, number, body = self._record("tracking", request)
        scripted = self._scripted("tracking")
        if scripted:
            return scripted[0], {}, json.dumps(scripted[1])
        if number not in self.invoices.get(order_id, {}):
            return 404, {}, json.dumps({"error": {"message": "Invoice not found"}})
        self.invoices[order_id][number].update(body)
        return self._receipt(order_id)

    def _delivery(self, request):
        order_id, number, body = self._record("delivery", request)
        scripted = self._scripted("delivery")
        if scripted:
            return scripted[0], {}, json.dumps(scripted[1])
        if number not in self.invoices.get(order_id, {}):
            return 404, {}, json.dumps({"error": {"message": "Invoice not found"}})
        return self._receipt(order_id)

    def _cancel(self, request):
        order_id, _, _ = self._record("cancel", request)
        scripted = self._scripted("cancel")
        if scripted:
            return scripted[0], {}, json.dumps(scripted[1])
        with self.lock:
            if self.statuses.get(order_id) == "invoiced" or self.invoices.get(order_id):
                return 400, {}, json.dumps({"error": {"message": "Order cannot be canceled: it is invoiced"}})
            self.statuses[order_id] = "canceled"
        return self._receipt(order_id)

    def count(self, route):
        return sum(1 for c in self.calls if c[0] == route)


def invoice_body(number="NF-1", value=5970, **extra):
    order = make_order("x")
    items = [{"id": i["id"], "price": i["sellingPrice"], "quantity": i["quantity"]} for i in order["items"]]
    return {"type": "Output", "issuanceDate": "2026-12-02T10:00:00-03:00", "invoiceNumber": number,
            "invoiceValue": value, "items": items, **extra}


TRACKING = {"trackingNumber": "TRK-1", "trackingUrl": "https://carrier.example/t/TRK-1", "courier": "Carrier",
            "dispatchedDate": "2026-12-02T12:00:00+00:00"}
DELIVERY = {"isDelivered": True, "deliveredDate": "2026-12-03 21:15",
            "events": [{"city": "Rio de Janeiro", "state": "RJ", "description": "Coletado", "date": "2026-12-02"}]}
