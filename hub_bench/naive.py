"""The baseline: the honest sequential consumer a team writes by hand from VTEX's documentation.

It retrieves a lot of ten feed items (VTEX's maximum per call) over one keep-alive session; for
each ready-for-handling order it gets the order, POSTs it to the ERP and calls start-handling, then
commits the lot's handles in one call. About 2.2 VTEX calls per order, like the hub. No database,
no retries, no concurrency: the cheapest correct loop, so the comparison does not flatter the hub.
"""
import json
import time
from dataclasses import dataclass
from urllib.parse import quote

import requests

MAX_LOT = 10  # VTEX's maximum `maxlot` for a feed retrieve


@dataclass
class NaiveResult:
    orders: int
    seconds: float
    cpu_seconds: float
    vtex_calls: int

    @property
    def per_second(self):
        return self.orders / self.seconds if self.seconds else 0.0


def run_naive_consumer(sandbox_url, erp_url, app_key, app_token, count, timeout=600.0):
    session = requests.Session()  # keep-alive: one connection per server for the whole run
    session.trust_env = False     # loopback servers; no proxy lookups per call
    vtex = {"X-VTEX-API-AppKey": app_key, "X-VTEX-API-AppToken": app_token,
            "Accept": "application/json", "Content-Type": "application/json"}
    feed = f"{sandbox_url}/api/orders/feed"
    done = calls = 0
    started, cpu_started = time.monotonic(), time.process_time()
    deadline = started + timeout
    while done < count and time.monotonic() < deadline:
        items = session.get(feed, params={"maxlot": str(MAX_LOT)}, headers=vtex, timeout=30).json()
        calls += 1
        if not items:
            time.sleep(0.05)
            continue
        for item in items:
            if item["state"] != "ready-for-handling":
                continue
            order_url = f"{sandbox_url}/api/oms/pvt/orders/{quote(item['orderId'], safe='')}"
            order = session.get(order_url, headers=vtex, timeout=30)
            order.raise_for_status()
            body = json.dumps({"event": "order.send", "vtex_order": order.json()})
            sent = session.post(erp_url, data=body, timeout=30, headers={
                "Content-Type": "application/json", "Idempotency-Key": f"naive:{item['orderId']}:send"})
            sent.raise_for_status()
            session.post(f"{order_url}/start-handling", headers=vtex, timeout=30).raise_for_status()
            calls += 2
            done += 1
        session.post(feed, data=json.dumps({"handles": [i["handle"] for i in items]}), headers=vtex,
                     timeout=30).raise_for_status()
        calls += 1
    return NaiveResult(orders=done, seconds=time.monotonic() - started,
                       cpu_seconds=time.process_time() - cpu_started, vtex_calls=calls)
