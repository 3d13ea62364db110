"""Fault switches: how the sandbox misbehaves on demand.

Set them from Python with ``sandbox.faults.update({...})`` (merged; unknown keys raise ValueError)
or over HTTP with ``POST /_sandbox/faults`` (same JSON, merged) and read them with ``GET /_sandbox/faults``
(``DELETE /_sandbox/faults`` or ``faults.reset()`` restores the defaults).

Feed faults (applied when a status change is enqueued / when the feed is retrieved):

* ``duplicate_rate`` (0..1) / ``duplicate_count`` (one-off n): the event is enqueued twice,
  same ``eventId``, two messages (two different handles).
* ``twin_rate`` / ``twin_count``: the change is enqueued under two different ``eventId`` values.
* ``reorder`` (bool): retrieve picks visible messages in random order instead of FIFO.
* ``partial_rate`` / ``partial_count``: a retrieve returns fewer items than it could
  (a random number from 0 to n-1, like an SQS short poll; 0 items is possible).

Route faults, each a dict (or a list of dicts) ``{"route": name | "*", "rate": p, "count": n, ...}``.
``route`` defaults to ``"*"`` (every VTEX route; the ``/_sandbox`` control API is never faulted).
``rate`` is the probability per matching call (default 1.0). With ``count`` the fault fires at most
``count`` more times (decremented on each injection; exhausted entries are removed). With neither,
the fault fires on every matching call until changed. Set a key to ``None`` to clear it.

* ``rate_limit``: ``{"route", "rate", "count", "retry_after": seconds (default 60)}`` → 429 + ``Retry-After``.
* ``server_error``: ``{"route", "rate", "count", "status": 500|502|503 (default 500)}``.
* ``slow``: ``{"route", "rate", "count", "delay_ms"}`` → the call sleeps, then is served normally.
* ``drop``: ``{"route", "rate", "count"}`` → the connection is closed with no response at all.

Global:

* ``latency_ms``: every VTEX call sleeps this long before anything else (benchmarks).
* ``handling_delay_ms``: after a successful start-handling, the order stays in ``start-handling`` this
  long before moving to ``handling`` (0 = immediately).

Route names: feed_retrieve, feed_commit, feed_config_get, feed_config_save, feed_config_delete,
get_order, list_orders, start_handling, cancel, hook_config_get, hook_config_save, hook_config_delete,
invoice, invoice_tracking, invoice_delivery.
"""
import copy
import random
import threading

ROUTES = (
    "feed_retrieve", "feed_commit", "feed_config_get", "feed_config_save", "feed_config_delete",
    "get_order", "list_orders", "start_handling", "cancel",
    "hook_config_get", "hook_config_save", "hook_config_delete",
    "invoice", "invoice_tracking", "invoice_delivery",
)
ROUTE_FAULTS = ("drop", "rate_limit", "server_error", "slow")
_RATE_KEYS = ("duplicate", "twin", "partial")

DEFAULTS = {
    "duplicate_rate": 0.0, "duplicate_count": 0,
    "twin_rate": 0.0, "twin_count": 0,
    "reorder": False,
    "partial_rate": 0.0, "partial_count": 0,
    "rate_limit": None, "server_error": None, "slow": None, "drop": None,
    "latency_ms": 0, "handling_delay_ms": 0,
}
_ROUTE_FAULT_KEYS = {"route", "rate", "count", "retry_after", "status", "delay_ms"}


class FaultSwitches:
    """Thread-safe fault settings. ``update`` merges; ``snapshot`` returns a copy."""

    def __init__(self, rng=None):
        self._lock = threading.Lock()
        self._rng = rng or random.Random()
        self._values = copy.deepcopy(DEFAULTS)

    # --- settings -------------------------------------------------------------------
    def update(self, changes=None, **kwargs):
        changes = dict(changes or {}, **kwargs)
        normalized = {key: self._normalize(key, value) for key, value in changes.items()}
        with self._lock:
            self._values.update(normalized)
        return self.snapshot()

    def reset(self):
        with self._lock:
            self._values = copy.deepcopy(DEFAULTS)

    def snapshot(self):
        with self._lock:
            return copy.deepcopy(self._values)

    def __getitem__(self, key):
        with self._lock:
            return copy.deepcopy(self._values[key])

    def get(self, key, default=None):
        with self._lock:
            return copy.deepcopy(self._values.get(key, default))

    @staticmethod
    def _normalize(key, value):
        if key not in DEFAULTS:
            raise ValueError(f"unknown fault switch {key!r}; known: {', '.join(sorted(DEFAULTS))}")
        if key in ROUTE_FAULTS:
            if value in (None, {}, []):
                return None
            entries = value if isinstance(value, list) else [value]
            out = []
            for entry in entries:
                if not isinstance(entry, dict):
                    raise ValueError(f"{key} must be a dict or a list of dicts")
                unknown = set(entry) - _ROUTE_FAULT_KEYS
                if unknown:
                    raise ValueError(f"{key}: unknown keys {sorted(unknown)}")
                route = entry.get("route", "*")
                if route != "*" and route not in ROUTES:
                    raise ValueError(f"{key}: unknown route {route!r}")
                clean = dict(entry, route=route, rate=float(entry.get("rate", 1.0)))
                if not 0.0 <= clean["rate"] <= 1.0:
                    raise ValueError(f"{key}: rate must be within 0..1")
                if "count" in entry and entry["count"] is not None:
                    clean["count"] = int(entry["count"])
                else:
                    clean.pop("count", None)
                out.append(clean)
            return out
        if key == "reorder":
            return bool(value)
        if key.endswith("_rate"):
            value = float(value or 0)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be within 0..1")
            return value
        value = int(value or 0)
        if value < 0:
            raise ValueError(f"{key} must be >= 0")
        return value

    # --- decisions ------------------------------------------------------------------
    def fires(self, name):
        """For duplicate/twin/partial: consume a one-off count first, else roll against the rate."""
        assert name in _RATE_KEYS
        with self._lock:
            if self._values[f"{name}_count"] > 0:
                self._values[f"{name}_count"] -= 1
                return True
            rate = self._values[f"{name}_rate"]
            return rate > 0 and self._rng.random() < rate

    def route_fault(self, kind, route):
        """Return the matching route-fault entry (a copy) if it fires for this call, else None."""
        with self._lock:
            entries = self._values.get(kind) or []
            for entry in entries:
                if entry["route"] not in ("*", route):
                    continue
                if "count" in entry and entry["count"] <= 0:
                    continue
                if entry["rate"] < 1.0 and self._rng.random() >= entry["rate"]:
                    continue
                fired = dict(entry)
                if "count" in entry:
                    entry["count"] -= 1
                    if entry["count"] <= 0:
                        entries.remove(entry)
                        self._values[kind] = entries or None
                return fired
            return None

    def random(self):
        with self._lock:
            return self._rng.random()

    def randint(self, a, b):
        with self._lock:
            return self._rng.randint(a, b)

    def shuffle(self, items):
        with self._lock:
            self._rng.shuffle(items)
