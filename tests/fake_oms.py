"""VTEX's order endpoints behind `responses`, with state: statuses move as VTEX moves them."""
import json
import re
import threading

from tests.fake_feed import BASE


def make_order(order_id, status="ready-for-handling", *, items=2):
    """A small, self-consistent order: totals add up to value, payments equal value (cents)."""
    lines = [{"id": f"SKU{n}", "productId": f"P{n}", "refId": f"REF-{n}", "name": f"Item {n}", "quantity": n + 1,
              "price": 1000 * (n + 1), "listPrice": 1200 * (n + 1), "sellingPrice": 990 * (n + 1), "seller": "1",
              "uniqueId": f"U{n}"} for n in range(items)]
    items_total = sum(i["sellingPrice"] * i["quantity"] for i in lines)
    shipping = 1500
    value = items_total + shipping
    return {
        "orderId": order_id, "sequence": order_id.split("-")[0][-6:], "status": status,
        "creationDate": "2026-11-27T09:00:00.0000000+00:00", "lastChange": "2026-11-27T10:00:00.0000000+00:00",
        "value": value, "hostname": "teststore",
        "totals": [{"id": "Items", "name": "Items", "value": items_total}, {"id": "Discounts", "name": "Discounts", "value": 0},
                   {"id": "Shipping", "name": "Shipping", "value": shipping}, {"id": "Tax", "name": "Tax", "value": 0}],
        "items": lines,
        "clientProfileData": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Silva", "document": "12345678909", "documentType": "cpf", "phone": "+5511999990000"},
        "shippingData": {"address": {"receiverName": "Ana Silva", "postalCode": "01310-100", "city": "São Paulo", "state": "SP", "country": "BRA", "street": "Av. Paulista", "number": "1000", "neighborhood": "Bela Vista", "complement": ""},
                         "logisticsInfo": [{"itemIndex": n, "selectedSla": "Normal", "price": shipping if n == 0 else 0, "shippingEstimate": "3bd"} for n in range(items)]},
        "paymentData": {"transactions": [{"isActive": True, "transactionId": "T1", "payments": [{"id": "PAY1", "paymentSystem": "2", "paymentSystemName": "Visa", "group": "creditCard", "value": value, "installments": 1}]}]},
        "storePreferencesData": {"currencyCode": "BRL"},
    }


class FakeOms:
    def __init__(self, rsps, base=BASE):
        self.statuses = {}
        self.start_handling_calls = {}
        self.get_calls = 0
        self.lock = threading.Lock()
        self.start_handling_status = None  # force an answer, e.g. 500
        self.fields = {}  # order id -> top-level fields laid over make_order's (sellers, orderGroup, ...)
        self.sellers = {}  # order id -> the seller id of every item
        rsps.add_callback("GET", re.compile(re.escape(base) + r"/api/oms/pvt/orders/[^/]+$"), callback=self._get)
        rsps.add_callback("POST", re.compile(re.escape(base) + r"/api/oms/pvt/orders/[^/]+/start-handling$"), callback=self._start)

    def add(self, order_id, status="ready-for-handling", *, seller=None, **fields):
        self.statuses[order_id] = status
        if seller is not None:
            self.sellers[order_id] = seller
        if fields:
            self.fields[order_id] = fields

    def _get(self, request):
        order_id = request.url.rsplit("/", 1)[1]
        with self.lock:
            self.get_calls += 1
            status = self.statuses.get(order_id)
        if status is None:
            return 404, {}, json.dumps({"error": {"code": "OMS001", "message": "Order not found"}})
        order = make_order(order_id, status)
        order.update(self.fields.get(order_id, {}))
        if order_id in self.sellers:
            for item in order["items"]:
                item["seller"] = self.sellers[order_id]
        return 200, {}, json.dumps(order)

    def _start(self, request):
        order_id = request.url.rsplit("/", 2)[1]
        with self.lock:
            self.start_handling_calls[order_id] = self.start_handling_calls.get(order_id, 0) + 1
            if self.start_handling_status == 409:
                self.statuses[order_id] = "handling"  # another consumer moved it on
            elif self.start_handling_status:
                return self.start_handling_status, {}, "{}"
            if self.statuses.get(order_id) != "ready-for-handling":
                return 409, {}, json.dumps({"error": {"code": "OMS003", "message": "Order status should be ready-for-handling to perform this action", "exception": None}})
            self.statuses[order_id] = "handling"
        return 204, {}, ""
