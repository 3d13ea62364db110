"""LoopbackERP: a tiny HTTP ERP for the webhook adapter, with failure injection and duplicate detection.

* ``POST``/``PUT``/``PATCH`` on any path (except ``/_erp/...``) is recorded as
  ``{"path", "method", "headers" (a dict; lookups ignore case), "body" (parsed JSON, else text), "received_at" (epoch s), "time" (same),
  "idempotency_key", "duplicate", "status", "id"}`` and answered ``200 {"id": "ERP-<n>"}``.
* A repeat delivery carrying an ``Idempotency-Key`` already accepted gets the same id and is flagged
  ``duplicate``. ``unique_keys()`` lists accepted keys; ``duplicates()`` the duplicate records.
* ``received`` holds the requests answered 200; ``rejected`` those answered with an injected failure;
  ``attempts`` holds both, in arrival order.
* ``fail_with(status, for_seconds=None, count=None, retry_after=None)``: answer ``status`` for that long /
  that many requests (both None: until ``recover()``).
* Control: ``GET /_erp/received`` (the ``received`` records; ``?all=1`` for every attempt),
  ``POST /_erp/fail {"status", "for_seconds", "count", "retry_after"}``, ``POST /_erp/recover``,
  ``POST /_erp/reset``.
"""
import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

from ..httpbase import BackgroundServer, JsonHandler


class Headers(dict):
    """A plain (JSON-serialisable) dict of the request headers whose lookups ignore case."""

    def _key(self, name):
        if dict.__contains__(self, name):
            return name
        lowered = str(name).lower()
        return next((k for k in self if k.lower() == lowered), name)

    def __getitem__(self, name):
        return dict.__getitem__(self, self._key(name))

    def __contains__(self, name):
        return dict.__contains__(self, self._key(name))

    def get(self, name, default=None):
        return dict.get(self, self._key(name), default)


class LoopbackERPHandler(JsonHandler):
    server_version = "LoopbackERP/1.0"

    def handle_request(self, method):
        erp = self.owner
        parts = urlsplit(self.path)
        if parts.path.startswith("/_erp/"):
            return self.control(method, parts.path[len("/_erp/"):].strip("/"), parse_qs(parts.query))
        if method not in ("POST", "PUT", "PATCH"):
            return self.send_json(405, {"error": "only POST, PUT and PATCH are accepted"}, {"Allow": "POST, PUT, PATCH"})
        raw = self.raw_body()
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = text
        if erp.latency_ms:
            time.sleep(erp.latency_ms / 1000.0)
        status, payload, headers = erp._accept(method, parts.path, Headers(self.headers.items()), body)
        self.send_json(status, payload, headers)

    def control(self, method, sub, query):
        erp = self.owner
        if sub == "received" and method == "GET":
            with erp._lock:
                records = list(erp.attempts if query.get("all") else erp.received)
            return self.send_json(200, records)
        try:
            body = self.json_body(default={}) if method == "POST" else {}
        except ValueError:
            return self.send_json(400, {"error": "invalid JSON"})
        if sub == "fail" and method == "POST":
            erp.fail_with(int(body.get("status", 500)), body.get("for_seconds"), body.get("count"),
                          body.get("retry_after"))
            return self.send_json(200, {"ok": True})
        if sub == "recover" and method == "POST":
            erp.recover()
            return self.send_json(200, {"ok": True})
        if sub == "reset" and method == "POST":
            erp.reset()
            return self.send_json(200, {"ok": True})
        return self.send_json(404, {"error": f"no control route {method} /_erp/{sub}"})


class LoopbackERP(BackgroundServer):
    handler_class = LoopbackERPHandler

    def __init__(self, port=0, latency_ms=0, host="127.0.0.1"):
        super().__init__(host, port)
        self.latency_ms = latency_ms
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.attempts = []
            self.received = []
            self.rejected = []
            self._ids = {}      # idempotency key -> ERP id
            self._next_id = 0
            self._failure = None

    # --- failure injection --------------------------------------------------------------
    def fail_with(self, status, for_seconds=None, count=None, retry_after=None):
        with self._lock:
            self._failure = {"status": int(status), "count": None if count is None else int(count),
                             "until": None if for_seconds is None else time.monotonic() + float(for_seconds),
                             "retry_after": retry_after}
        return self

    def recover(self):
        with self._lock:
            self._failure = None
        return self

    def _failing_locked(self):
        failure = self._failure
        if failure is None:
            return None
        if failure["until"] is not None and time.monotonic() >= failure["until"]:
            self._failure = None
            return None
        if failure["count"] is not None:
            if failure["count"] <= 0:
                self._failure = None
                return None
            failure["count"] -= 1
        return failure

    # --- recording ----------------------------------------------------------------------
    def _accept(self, method, path, headers, body):
        key = headers.get("Idempotency-Key")
        now = time.time()
        record = {"path": path, "method": method, "headers": headers, "body": body, "received_at": now,
                  "time": now, "idempotency_key": key, "duplicate": False}
        with self._lock:
            self.attempts.append(record)
            failure = self._failing_locked()
            if failure:
                record.update(status=failure["status"], id=None)
                self.rejected.append(record)
                extra = {"Retry-After": failure["retry_after"]} if failure["retry_after"] is not None else None
                return failure["status"], {"error": f"injected failure {failure['status']}"}, extra
            if key is not None and key in self._ids:
                record.update(duplicate=True, id=self._ids[key])
            else:
                self._next_id += 1
                record["id"] = f"ERP-{self._next_id}"
                if key is not None:
                    self._ids[key] = record["id"]
            record["status"] = 200
            self.received.append(record)
            return 200, {"id": record["id"]}, None

    def unique_keys(self):
        with self._lock:
            return list(self._ids)

    def duplicates(self):
        with self._lock:
            return [r for r in self.received if r["duplicate"]]

    def wait_for(self, n, timeout=5.0):
        """Block until at least ``n`` requests were answered 200; return the received list."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.01)
        with self._lock:
            return list(self.received)
