"""The VTEX sandbox and the loopback ERP as processes of their own, for the benchmark.

    python -m hub_bench.servers sandbox --latency-ms 50 --app-key K --app-token T
    python -m hub_bench.servers erp --latency-ms 100

Each prints ``LISTENING <url>`` once it accepts connections, then serves until SIGTERM/SIGINT.
They are the sandbox and ERP of ``vtex_sandbox`` with a few light control routes the
benchmark needs (the stock ``/_sandbox/stats`` lists every order's status and the stock ERP keeps
every request body; at 20,000 orders both would weigh on the machine being measured):

sandbox: ``POST /_bench/seed {"count"}`` creates ready-for-handling orders now;
``POST /_bench/steady {"rate", "seconds"}`` creates them at a steady rate on a background thread;
``GET /_bench/summary`` counts (calls per route, peak calls per minute and per second per route,
start-handling calls and successes, feed depth); ``GET /_bench/ready-at`` maps each order id to the
time its ready-for-handling event entered the feed (epoch seconds, this host's clock).

ERP: keeps only the order id, the event and the Idempotency-Key of each request;
``GET /_erp/summary`` and ``GET /_erp/first-receipts`` (order id -> time of the first accepted send).
"""
import argparse
import collections
import copy
import math
import signal
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

from vtex_sandbox import LoopbackERP, Sandbox, SandboxServer
from vtex_sandbox.erp import LoopbackERPHandler
from vtex_sandbox.server import SandboxHandler

READY = "ready-for-handling"


class BenchSandbox(Sandbox):
    def __init__(self, app_key, **kwargs):
        super().__init__(**kwargs)
        self.app_key = app_key
        self.ready_at = {}
        self._per_second = collections.defaultdict(collections.deque)
        self._max_per_second = {}
        self._steady = None

    def _emit_locked(self, record, state, last_state, last_ts, ts):
        if state == READY:
            self.ready_at.setdefault(record["data"]["orderId"], ts)
        super()._emit_locked(record, state, last_state, last_ts, ts)

    def record_call(self, route, order_id=None):
        super().record_call(route, order_id)
        with self._lock:
            now = self.now()
            window = self._per_second[route]
            window.append(now)
            while window and window[0] <= now - 1.0:
                window.popleft()
            self._max_per_second[route] = max(self._max_per_second.get(route, 0), len(window))

    def reset_stats(self):
        super().reset_stats()
        if hasattr(self, "_per_second"):
            with self._lock:
                self._per_second.clear()
                self._max_per_second.clear()

    def list_orders(self, app_key, query):
        """The stock answer, filtering before copying: the stock code deep-copies every order of
        the store first, which at 20,000 orders stalled the sandbox for seconds each time the
        hub's reconciliation asked for the list."""
        from vtex_sandbox.util import parse_iso
        from vtex_sandbox.vtex_api import MAX_PAGES

        def one(name, default=None):
            values = query.get(name)
            return values[-1] if values else default

        try:
            page, per_page = int(one("page", 1)), int(one("per_page", 15))
            statuses = {s for s in (one("f_status") or "").split(",") if s}
            start = end = None
            if one("f_creationDate"):
                lo, hi = one("f_creationDate").split(":", 1)[1].strip().strip("[]").split(" TO ")
                start, end = parse_iso(lo), parse_iso(hi)
        except (IndexError, ValueError):
            return super().list_orders(app_key, query)  # the stock error answers
        if not 1 <= per_page <= 100 or page < 1 or page > MAX_PAGES:
            return super().list_orders(app_key, query)
        with self._lock:
            store = self._stores[self.account(app_key).name]
            picked = []
            for oid in store["orders"]:
                data = self._orders[oid]["data"]
                if statuses and data["status"] not in statuses:
                    continue
                created = parse_iso(data["creationDate"])
                if start is not None and not start <= created <= end:
                    continue
                picked.append((created, oid))
            descending = (one("orderBy") or "creationDate,desc").lower().endswith(",desc")
            picked.sort(reverse=descending)
            window = [copy.deepcopy(self._orders[oid]["data"]) for _, oid in picked[(page - 1) * per_page: page * per_page]]
            total_value = float(sum(self._orders[oid]["data"]["value"] for _, oid in picked))
            total_items = float(sum(i["quantity"] for _, oid in picked for i in self._orders[oid]["data"]["items"]))
        total = len(picked)
        return {
            "list": [self._list_row(o) for o in window], "facets": [],
            "paging": {"total": total, "pages": math.ceil(total / per_page), "currentPage": page, "perPage": per_page},
            "stats": {"stats": {"totalValue": {"Count": total, "Sum": total_value},
                                "totalItems": {"Count": total, "Sum": total_items}}},
        }

    def summary(self):
        with self._lock:
            now = self.now()
            depth = 0
            for feed in self._feeds.values():
                feed.expire(now)
                depth += feed.depth()
            return {
                "calls": dict(self._calls),
                "max_per_minute": dict(self._max_per_minute),
                "max_per_second": dict(self._max_per_second),
                "orders": len(self._orders),
                "ready": len(self.ready_at),
                "start_handling_ok": sum(self._sh_ok.values()),
                "start_handling_orders": len(self._sh_ok),
                "start_handling_calls": sum(self._sh_calls.values()),
                "start_handling_repeated": sum(1 for n in self._sh_calls.values() if n > 1),
                "feed_depth": depth,
                "retrieved": self._retrieved,
                "committed": self._committed,
                "enqueued": self._enqueued,
                "steady_running": bool(self._steady and self._steady.is_alive()),
            }

    def start_steady(self, rate, seconds):
        count = max(1, int(round(rate * seconds)))
        interval = 1.0 / float(rate)

        def run():
            start = time.monotonic()
            for i in range(count):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.create_orders(self.app_key, 1)

        self._steady = threading.Thread(target=run, name="steady-arrivals", daemon=True)
        self._steady.start()
        return count


class BenchSandboxHandler(SandboxHandler):
    def handle_request(self, method):
        path = unquote(urlsplit(self.path).path)
        if not path.startswith("/_bench/"):
            return super().handle_request(method)
        sb = self.sandbox
        sub = path[len("/_bench/"):].strip("/")
        if sub == "summary" and method == "GET":
            return self.send_json(200, sb.summary())
        if sub == "ready-at" and method == "GET":
            with sb._lock:
                return self.send_json(200, dict(sb.ready_at))
        if sub == "seed" and method == "POST":
            body = self.json_body(default={})
            ids = sb.create_orders(sb.app_key, int(body.get("count", 1)))
            return self.send_json(200, {"created": len(ids)})
        if sub == "steady" and method == "POST":
            body = self.json_body(default={})
            return self.send_json(200, {"count": sb.start_steady(float(body["rate"]), float(body["seconds"]))})
        return self.send_json(404, {"error": f"no route {method} {path}"})


class BenchSandboxServer(SandboxServer):
    handler_class = BenchSandboxHandler


class BenchERP(LoopbackERP):
    """The loopback ERP keeping only what the benchmark reads (order id, event, idempotency key)."""

    def reset(self):
        super().reset()
        self.first_receipt = {}
        self.duplicate_count = 0

    def _accept(self, method, path, headers, body):
        # The stock ERP's bookkeeping (idempotency keys, injected failures) without its record list.
        key = headers.get("Idempotency-Key")
        event = order_id = None
        if isinstance(body, dict):
            event = body.get("event")
            order_id = (body.get("vtex_order") or body.get("order") or {}).get("orderId")
        now = time.time()
        with self._lock:
            failure = self._failing_locked()
            if failure:
                extra = {"Retry-After": failure["retry_after"]} if failure["retry_after"] is not None else None
                return failure["status"], {"error": f"injected failure {failure['status']}"}, extra
            if key is not None and key in self._ids:
                self.duplicate_count += 1
                return 200, {"id": self._ids[key]}, None
            self._next_id += 1
            erp_id = f"ERP-{self._next_id}"
            if key is not None:
                self._ids[key] = erp_id
            if order_id and event == "order.send":
                self.first_receipt.setdefault(order_id, now)
            return 200, {"id": erp_id}, None

    def summary(self):
        with self._lock:
            return {"unique_keys": len(self._ids), "accepted": self._next_id, "duplicates": self.duplicate_count,
                    "orders_sent": len(self.first_receipt)}


class BenchERPHandler(LoopbackERPHandler):
    def control(self, method, sub, query):
        erp = self.owner
        if sub == "summary" and method == "GET":
            return self.send_json(200, erp.summary())
        if sub == "first-receipts" and method == "GET":
            with erp._lock:
                return self.send_json(200, dict(erp.first_receipt))
        return super().control(method, sub, query)


class BenchERPServer(BenchERP):
    handler_class = BenchERPHandler


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hub_bench.servers")
    parser.add_argument("kind", choices=["sandbox", "erp"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--account", default="benchstore")
    parser.add_argument("--app-key", default="vtexappkey-benchstore-BENCH")
    parser.add_argument("--app-token", default="bench-token-not-secret")
    parser.add_argument("--seed", type=int, default=7)
    opts = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if opts.kind == "sandbox":
        sandbox = BenchSandbox(opts.app_key, seed=opts.seed)
        sandbox.add_account(opts.account, app_key=opts.app_key, app_token=opts.app_token)
        sandbox.faults.update(latency_ms=opts.latency_ms)
        server = BenchSandboxServer(sandbox, host=opts.host, port=opts.port).start()
        closers = [server.stop, sandbox.close]
    else:
        server = BenchERPServer(port=opts.port, latency_ms=opts.latency_ms, host=opts.host).start()
        closers = [server.stop]
    print(f"LISTENING {server.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for close in closers:
            close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
