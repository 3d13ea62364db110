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
``GET /_erp/summary`` and ``GET /_erp/first-receipts`` (order id -> time of the first accepted send);
``POST /_erp/invoice-to {"hub", "tokens": {store: token}}`` turns on the way back: a few threads
post VTEX's invoice notification then the tracking number of every order received to the hub's ERP
API (``{hub}/{store}/api/oms/pvt/orders/...``), with the demo invoicer's bodies
(``vtex_sandbox.erp.invoicer.bodies_for``), retrying 429, 5xx and refused connections.

``amqp-sink`` and ``dir-sink`` are the same ERP's bookkeeping (and way back) for the ``amqp`` and
``sftp`` adapters: the first consumes a RabbitMQ queue, the second watches the folder the SFTP
server writes into; both serve the ERP's control routes.

``--stores N`` gives the sandbox N stores: ``benchstore`` with the given app key, then
``benchstore2``... with ``<app key>-2``...; seeded and steady orders are spread over them in turn,
and ``/_bench/summary`` adds the busiest minute per store and route (``max_per_minute_by_store``).
"""
import argparse
import collections
import copy
import json
import math
import os
import queue
import signal
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

import requests

from vtex_sandbox import LoopbackERP, Sandbox, SandboxServer
from vtex_sandbox.erp import LoopbackERPHandler
from vtex_sandbox.erp.invoicer import NotAnOrderFile, bodies_for
from vtex_sandbox.server import SandboxHandler

READY = "ready-for-handling"


def store_credentials(account, app_key, stores):
    """[(account name, app key)] of a run with `stores` stores (the first keeps the plain names)."""
    return [(account, app_key)] + [(f"{account}{i}", f"{app_key}-{i}") for i in range(2, stores + 1)]


class BenchSandbox(Sandbox):
    def __init__(self, app_key, **kwargs):
        super().__init__(**kwargs)
        self.app_key = app_key
        self.app_keys = [app_key]
        self.ready_at = {}
        self._per_second = collections.defaultdict(collections.deque)
        self._max_per_second = {}
        self._store_windows = collections.defaultdict(collections.deque)
        self._max_per_store = collections.defaultdict(dict)
        self._caller = threading.local()  # the app key of the request this thread serves
        self._next_store = 0
        self._steady = None

    def spread(self, count):
        """Create `count` orders, one store after the other (a round-robin over the stores)."""
        created = 0
        for _ in range(int(count)):
            key = self.app_keys[self._next_store % len(self.app_keys)]
            self._next_store += 1
            created += len(self.create_orders(key, 1))
        return created

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
            # VTEX's caps are per store (app key) and route: the busiest 60 s of each.
            account = self._accounts.get(getattr(self._caller, "app_key", None) or "")
            if account is not None:
                window = self._store_windows[(account.name, route)]
                window.append(now)
                while window and window[0] <= now - 60.0:
                    window.popleft()
                peaks = self._max_per_store[account.name]
                peaks[route] = max(peaks.get(route, 0), len(window))

    def reset_stats(self):
        super().reset_stats()
        if hasattr(self, "_per_second"):
            with self._lock:
                self._per_second.clear()
                self._max_per_second.clear()
                self._store_windows.clear()
                self._max_per_store.clear()

    def round_trip_counts(self):
        """(orders invoiced in full, orders with a tracking number) over every store."""
        invoiced = tracked = 0
        for record in self._orders.values():
            data = record["data"]
            if data["status"] == "invoiced":
                invoiced += 1
            packages = (data.get("packageAttachment") or {}).get("packages") or []
            if any(p.get("trackingNumber") for p in packages):
                tracked += 1
        return invoiced, tracked

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
            invoiced, tracked = self.round_trip_counts()
            return {
                "calls": dict(self._calls),
                "max_per_minute": dict(self._max_per_minute),
                "max_per_minute_by_store": {k: dict(v) for k, v in self._max_per_store.items()},
                "invoiced": invoiced,
                "tracked": tracked,
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
                self.spread(1)

        self._steady = threading.Thread(target=run, name="steady-arrivals", daemon=True)
        self._steady.start()
        return count


class BenchSandboxHandler(SandboxHandler):
    def vtex(self, route, order_id, query):
        self.sandbox._caller.app_key = self.headers.get("X-VTEX-API-AppKey")
        return super().vtex(route, order_id, query)

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
            return self.send_json(200, {"created": sb.spread(int(body.get("count", 1)))})
        if sub == "steady" and method == "POST":
            body = self.json_body(default={})
            return self.send_json(200, {"count": sb.start_steady(float(body["rate"]), float(body["seconds"]))})
        return self.send_json(404, {"error": f"no route {method} {path}"})


class BenchSandboxServer(SandboxServer):
    handler_class = BenchSandboxHandler


class BenchERP(LoopbackERP):
    """The loopback ERP keeping only what the benchmark reads (order id, event, idempotency key)."""

    INVOICE_THREADS = 4

    def reset(self):
        super().reset()
        self.first_receipt = {}
        self.duplicate_count = 0
        self.sink_keys = set()
        self.invoice_queue = queue.Queue()
        self.invoiced = {}        # order id -> time the hub accepted its tracking number (the last call)
        self.invoice_problems = collections.Counter()
        self.invoice_target = None

    # --- the way back ---------------------------------------------------------------------------
    def invoice_to(self, hub, tokens):
        first = self.invoice_target is None
        self.invoice_target = {"hub": hub.rstrip("/"), "tokens": dict(tokens)}
        if first:
            for i in range(self.INVOICE_THREADS):
                threading.Thread(target=self._invoicer, name=f"bench-invoicer-{i}", daemon=True).start()

    def _queue_invoice(self, document):
        if self.invoice_target is not None and isinstance(document, dict) and document.get("event") == "order.send":
            self.invoice_queue.put(document)

    def _invoicer(self):
        session = requests.Session()
        session.trust_env = False
        while True:
            document = self.invoice_queue.get()
            try:
                order_id, invoice, tracking = bodies_for(document)
            except NotAnOrderFile:
                continue
            target = self.invoice_target
            store = (document.get("account") or (document.get("vtex_order") or {}).get("hostname")
                     or next(iter(target["tokens"]), ""))
            headers = {"Authorization": f"Bearer {target['tokens'].get(store, '')}", "Content-Type": "application/json"}
            base = f"{target['hub']}/{store}/api/oms/pvt/orders/{order_id}"
            for method, url, body in (("POST", f"{base}/invoice", invoice),
                                      ("PATCH", f"{base}/invoice/{invoice['invoiceNumber']}", tracking)):
                for attempt in range(60):
                    try:
                        answer = session.request(method, url, data=json.dumps(body), headers=headers, timeout=30)
                    except requests.RequestException:
                        answer = None
                    if answer is not None and answer.status_code < 300:
                        break
                    with self._lock:
                        self.invoice_problems[str(answer.status_code if answer is not None else "no answer")] += 1
                    if answer is not None and 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
                        break  # refused: retrying will not change it
                    time.sleep(min(5.0, 0.2 * (attempt + 1)))
            with self._lock:
                self.invoiced.setdefault(order_id, time.time())

    # --- receipts -------------------------------------------------------------------------------
    def record_receipt(self, key, document, when=None):
        """A delivery seen by a sink (a queue message, a file): the same bookkeeping as a POST."""
        order_id = event = None
        if isinstance(document, dict):
            event = document.get("event")
            order_id = (document.get("vtex_order") or document.get("order") or {}).get("orderId")
        with self._lock:
            if key is not None and key in self.sink_keys:
                self.duplicate_count += 1
                return
            if key is not None:
                self.sink_keys.add(key)
                self._ids[key] = key
            self._next_id += 1
            if order_id and event == "order.send":
                self.first_receipt.setdefault(order_id, when or time.time())
        self._queue_invoice(document)

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
        self._queue_invoice(body)
        return 200, {"id": erp_id}, None

    def summary(self):
        with self._lock:
            return {"unique_keys": len(self._ids), "accepted": self._next_id, "duplicates": self.duplicate_count,
                    "orders_sent": len(self.first_receipt), "invoiced": len(self.invoiced),
                    "invoice_problems": dict(self.invoice_problems)}


class BenchERPHandler(LoopbackERPHandler):
    def control(self, method, sub, query):
        erp = self.owner
        if sub == "summary" and method == "GET":
            return self.send_json(200, erp.summary())
        if sub == "first-receipts" and method == "GET":
            with erp._lock:
                return self.send_json(200, dict(erp.first_receipt))
        if sub == "invoiced" and method == "GET":
            with erp._lock:
                return self.send_json(200, dict(erp.invoiced))
        if sub == "invoice-to" and method == "POST":
            body = self.json_body(default={})
            erp.invoice_to(body["hub"], body.get("tokens") or {})
            return self.send_json(200, {"ok": True})
        return super().control(method, sub, query)


class BenchERPServer(BenchERP):
    handler_class = BenchERPHandler


def consume_amqp(erp, url, queue_name, stop):
    """Take every message of `queue_name` (declared here) into the ERP's bookkeeping."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue_name, durable=False, auto_delete=False)
    channel.basic_qos(prefetch_count=200)

    def on_message(ch, method, properties, body):
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        erp.record_receipt(properties.message_id, document)
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(queue_name, on_message)
    while not stop.is_set():
        connection.process_data_events(time_limit=0.2)
    try:
        channel.queue_delete(queue_name)
        connection.close()
    except Exception:  # the broker going away at the end is not the benchmark's business
        pass


def watch_folder(erp, folder, stop, interval=0.1):
    """Every new ``*.json`` file the SFTP server writes into `folder`, once (time: the file's mtime)."""
    seen = set()
    while not stop.wait(interval):
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.name in seen or entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue
            try:
                with open(entry.path, "rb") as fh:
                    document = json.loads(fh.read())
                when = entry.stat().st_mtime
            except (OSError, ValueError):
                continue  # still being written: next look
            seen.add(entry.name)
            erp.record_receipt(document.get("idempotency_key") if isinstance(document, dict) else entry.name, document, when)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hub_bench.servers")
    parser.add_argument("kind", choices=["sandbox", "erp", "amqp-sink", "dir-sink"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--account", default="benchstore")
    parser.add_argument("--app-key", default="vtexappkey-benchstore-BENCH")
    parser.add_argument("--app-token", default="bench-token-not-secret")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stores", type=int, default=1)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--queue", default="", help="amqp-sink: the queue to declare and consume")
    parser.add_argument("--folder", default="", help="dir-sink: the folder to watch")
    opts = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if opts.kind == "sandbox":
        sandbox = BenchSandbox(opts.app_key, seed=opts.seed)
        sandbox.app_keys = []
        for name, key in store_credentials(opts.account, opts.app_key, opts.stores):
            sandbox.add_account(name, app_key=key, app_token=opts.app_token)
            sandbox.app_keys.append(key)
        sandbox.faults.update(latency_ms=opts.latency_ms)
        server = BenchSandboxServer(sandbox, host=opts.host, port=opts.port).start()
        closers = [server.stop, sandbox.close]
    else:
        server = BenchERPServer(port=opts.port, latency_ms=opts.latency_ms, host=opts.host).start()
        closers = [server.stop]
        if opts.kind != "erp":
            done = threading.Event()
            if opts.kind == "amqp-sink":
                target, args = consume_amqp, (server, opts.amqp_url, opts.queue, done)
            else:
                target, args = watch_folder, (server, opts.folder, done)
            worker = threading.Thread(target=target, args=args, name=opts.kind, daemon=True)
            worker.start()
            closers.insert(0, lambda: (done.set(), worker.join(timeout=5)))
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
