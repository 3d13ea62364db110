"""Hook ping and background delivery of hook notifications (with retries and backoff).

Deliveries run on worker threads, never on the request thread. A delivery that does not get a 200
within 5 s is retried ``max_attempts - 1`` more times, waiting ``backoff_s * 2**(attempt-1)`` between tries.
"""
import heapq
import itertools
import json
import threading
import time
import urllib.error
import urllib.request

TIMEOUT_S = 5.0

# Never route loopback hook calls through an environment proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_json(url, body, headers=None, timeout=TIMEOUT_S):
    """POST JSON; return the HTTP status (0 when no response could be obtained)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(str(name), str(value))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


class HookDispatcher:
    def __init__(self, workers=4, max_attempts=4, backoff_s=0.2, on_result=None):
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.on_result = on_result  # callback(kind, delivery) with kind in attempt/delivered/failed
        self._heap = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._threads = []
        self._workers = workers
        self._stopped = False
        self._inflight = 0

    def submit(self, url, headers, body):
        self._ensure_started()
        delivery = {"url": url, "headers": dict(headers or {}), "body": body, "attempt": 0}
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic(), next(self._seq), delivery))
            self._cond.notify()

    def pending(self):
        with self._cond:
            return len(self._heap) + self._inflight

    def wait_idle(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self):
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()

    def _ensure_started(self):
        with self._cond:
            self._stopped = False
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self._workers:
                thread = threading.Thread(target=self._run, name="sandbox-hook-worker", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self):
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic()))
                if self._stopped:
                    return
                _, _, delivery = heapq.heappop(self._heap)
                self._inflight += 1
            try:
                delivery["attempt"] += 1
                status = post_json(delivery["url"], delivery["body"], delivery["headers"])
                delivery["status"] = status
                self._report("attempt", delivery)
                if status == 200:
                    self._report("delivered", delivery)
                elif delivery["attempt"] >= self.max_attempts:
                    self._report("failed", delivery)
                else:
                    due = time.monotonic() + self.backoff_s * 2 ** (delivery["attempt"] - 1)
                    with self._cond:
                        heapq.heappush(self._heap, (due, next(self._seq), delivery))
                        self._cond.notify()
            finally:
                with self._cond:
                    self._inflight -= 1

    def _report(self, kind, delivery):
        if self.on_result:
            try:
                self.on_result(kind, dict(delivery))
            except Exception:  # a broken callback must not kill the worker
                pass
