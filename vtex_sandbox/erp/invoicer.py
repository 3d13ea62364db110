"""The demo ERP's way back: invoice each order a file_drop adapter delivered, through the hub's ERP API.

``python -m vtex_sandbox.erp.invoicer --drop var/drop --hub http://127.0.0.1:8000/erp-api/demostore``
(the token in the ``HUB_ERP_TOKEN`` environment variable, never on the command line) watches the
drop folder. A few seconds (``--delay``) after an order file (``"event": "order.send"``) appears it
posts VTEX's invoice notification for the whole order, then the tracking number, to the hub's
inbound API, as an ERP connector that speaks VTEX's Orders API would:

    POST  {hub}/api/oms/pvt/orders/{orderId}/invoice
    PATCH {hub}/api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}

The bodies depend only on the order (invoice number ``NF-{orderId}``, issued on the order's creation
date, items and value from the order), so answering the same file again (after a restart) is a
repeat the hub recognises (200, nothing sent to VTEX twice). A refused body (4xx) is reported and
not retried; the hub not answering, 429, 5xx and 401/403 (a token revoked meanwhile) are retried
with a growing pause. Plain standard library: no Django.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import quote

TOKEN_ENV = "HUB_ERP_TOKEN"
MAX_FILE_BYTES = 5 * 1024 * 1024
PER_SCAN = 20             # files answered per scan at most: a backlog is worked through, scan by scan
RETRY_PAUSES = (2, 5, 10, 30, 60)
RETRYABLE = frozenset({401, 403, 408, 429, 500, 502, 503, 504})
COURIER = "Demo Express"


class NotAnOrderFile(ValueError):
    """The file is not a file_drop order delivery (another action, or not the adapter's format)."""


def bodies_for(document):
    """(order id, invoice body, tracking body) for one file_drop document of an ``order.send``."""
    if not isinstance(document, dict) or document.get("event") != "order.send":
        raise NotAnOrderFile("not an order.send file")
    order = document.get("vtex_order")
    if not isinstance(order, dict) or not isinstance(order.get("orderId"), str) or not order["orderId"]:
        raise NotAnOrderFile("no vtex_order.orderId")
    items = []
    for item in order.get("items") or []:
        price = item.get("sellingPrice", item.get("price"))
        if not isinstance(item.get("id"), (str, int)) or not isinstance(price, int) or not isinstance(item.get("quantity"), int):
            raise NotAnOrderFile(f"an item without id, price or quantity: {str(item)[:200]}")
        items.append({"id": str(item["id"]), "price": price, "quantity": item["quantity"]})
    value = order.get("value")
    if not items or not isinstance(value, int) or value <= 0:
        raise NotAnOrderFile("no items or no value")
    order_id = order["orderId"]
    issued = order.get("creationDate") or document.get("written_at")
    if not isinstance(issued, str) or len(issued) < 10:
        raise NotAnOrderFile("no creationDate")
    number = f"NF-{order_id}"
    invoice = {"type": "Output", "issuanceDate": issued, "invoiceNumber": number, "invoiceValue": value, "items": items}
    tracking = {"trackingNumber": "DX" + "".join(c for c in order_id if c.isalnum()), "trackingUrl": None,
                "courier": COURIER, "dispatchedDate": issued}
    return order_id, invoice, tracking


class Refused(Exception):
    """The hub answered with a status that retrying will not change."""


class Unavailable(Exception):
    """The hub did not answer, or answered with a status worth retrying later."""


@dataclass
class _Pending:
    due: float                 # monotonic time at which to (re)try
    stage: str = "invoice"     # then "tracking"
    failures: int = 0
    bodies: tuple = field(default=None)


class Invoicer:
    """Scans ``drop`` and answers each order file through the hub's ERP API at ``hub``."""

    def __init__(self, drop, hub, token, delay=5.0, timeout=10.0, out=None):
        self.drop, self.hub, self.token = str(drop), hub.rstrip("/"), token
        self.delay, self.timeout = float(delay), float(timeout)
        self.out = out or sys.stdout
        self.pending = {}      # (name, mtime_ns) -> _Pending
        self.finished = set()  # (name, mtime_ns) answered, refused or not an order file
        self.invoiced = []     # order ids the hub accepted an invoice for (202 or 200)
        self.last_problem = None
        # Straight to the hub: an environment proxy would not reach a hub on loopback.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def say(self, text):
        print(f"demo ERP: {text}", file=self.out, flush=True)

    def scan(self, now=None):
        """Note new order files, then answer the due ones (at most PER_SCAN). Returns how many it tried."""
        now = time.monotonic() if now is None else now
        wall = time.time()
        try:
            entries = list(os.scandir(self.drop))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
            except OSError:
                continue  # gone meanwhile
            key = (entry.name, stat.st_mtime_ns)
            if key not in self.pending and key not in self.finished:
                # A few seconds after the file appeared, as an ERP that takes a moment to invoice.
                self.pending[key] = _Pending(due=now + max(0.0, self.delay - max(0.0, wall - stat.st_mtime)))
        answered = 0
        for key in sorted((k for k, p in self.pending.items() if p.due <= now), key=lambda k: self.pending[k].due)[:PER_SCAN]:
            answered += 1
            if not self._answer(key, self.pending[key], now):
                break  # the hub is not answering: the other files wait for the next scan
        return answered

    def _answer(self, key, pending, now):
        """Answer one file; False when the hub did not answer (the file is tried again later)."""
        name = key[0]
        try:
            if pending.bodies is None:
                pending.bodies = self._read(name)
            order_id, invoice, tracking = pending.bodies
            base = f"{self.hub}/api/oms/pvt/orders/{quote(order_id, safe='')}"
            if pending.stage == "invoice":
                code, answer = self._call("POST", f"{base}/invoice", invoice)
                self.invoiced.append(order_id)
                if code != 200:  # 200: a repeat the hub already had (a restart): nothing to say
                    self.say(f"invoiced order {order_id} as {invoice['invoiceNumber']} (hub update {answer.get('id')}, {answer.get('status')})")
                pending.stage = "tracking"
            number = quote(invoice["invoiceNumber"], safe="")
            code, answer = self._call("PATCH", f"{base}/invoice/{number}", tracking)
            if code != 200:
                self.say(f"sent tracking number {tracking['trackingNumber']} for order {order_id} (hub update {answer.get('id')}, {answer.get('status')})")
        except NotAnOrderFile:
            pass  # a cancel file, or something else in the folder: not ours to answer
        except Refused as exc:
            self.say(f"{name}: the hub refused the {pending.stage}: {exc}")
        except Unavailable as exc:
            pause = RETRY_PAUSES[min(pending.failures, len(RETRY_PAUSES) - 1)]
            pending.failures += 1
            pending.due = now + pause
            if str(exc) != self.last_problem:  # once per outage, not once per file and try
                self.say(f"{exc}; trying again")
                self.last_problem = str(exc)
            return False
        self.last_problem = None
        del self.pending[key]
        self.finished.add(key)
        return True

    def _read(self, name):
        path = os.path.join(self.drop, name)
        try:
            if os.path.getsize(path) > MAX_FILE_BYTES:
                raise NotAnOrderFile("too large")
            with open(path, "rb") as fh:
                document = json.loads(fh.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise NotAnOrderFile(str(exc)) from None
        return bodies_for(document)

    def _call(self, method, url, body):
        request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            answer = _json(exc.read())
            message = f"{exc.code} {answer.get('error') or answer.get('detail') or exc.reason}"
            if exc.code in RETRYABLE:
                raise Unavailable(f"the hub answered {message}") from None
            raise Refused(message) from None
        except (OSError, urllib.error.URLError) as exc:
            raise Unavailable(f"the hub does not answer ({getattr(exc, 'reason', exc)})") from None

    def run(self, stop, interval=1.0):
        while not stop.is_set():
            self.scan()
            stop.wait(interval)


def _json(raw):
    try:
        value = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def parser():
    p = argparse.ArgumentParser(
        prog="python -m vtex_sandbox.erp.invoicer",
        description="A demo ERP: invoice each order a file_drop adapter writes into DROP, a few seconds after it "
                    f"appears, through the hub's ERP API (token in ${TOKEN_ENV}).")
    p.add_argument("--drop", required=True, help="the file_drop adapter's directory (e.g. var/drop)")
    p.add_argument("--hub", required=True, metavar="URL",
                   help="the store's ERP API base URL, e.g. http://127.0.0.1:8000/erp-api/demostore")
    p.add_argument("--delay", type=float, default=5.0, help="seconds between an order file appearing and its invoice (default 5)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between two looks at the folder (default 1)")
    return p


def main(argv=None):
    opts = parser().parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        print(f"vtex_sandbox.erp.invoicer: error: set {TOKEN_ENV} to an ERP API token of the store "
              "(python manage.py issue_erp_token STORE prints one)", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    invoicer = Invoicer(opts.drop, opts.hub, token, delay=opts.delay)
    invoicer.say(f"invoicing the orders in {opts.drop} about {opts.delay:g} s after they arrive, through {invoicer.hub}")
    invoicer.run(stop, interval=opts.interval)
    invoicer.say("stopping.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
