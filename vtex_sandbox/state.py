"""In-memory state of the sandbox: stores, app keys, orders, feeds, hooks and call statistics.

One ``Sandbox`` holds any number of stores (account names). Each app key belongs to one store and
has its own feed and its own hook (VTEX: one feed and one hook per app key); every status change of
a store's order is offered to each of that store's app keys and enqueued where the filter passes.

Time: ``sandbox.now()`` is wall-clock time plus an offset that ``advance_time(seconds)`` moves forward,
so visibility timeouts, retention and the 60 s call windows can be tested without sleeping.
All state is guarded by one re-entrant lock; network I/O (hook ping/delivery) never holds it.

Persistence: with ``state_file=PATH`` the stores, app keys, orders, feeds (configuration and queued
messages), hooks, event log and clock offset are loaded from PATH at start and written back to it
(atomically) while they change and on ``close()``; see ``persistence``.
"""
import collections
import copy
import random
import threading
import time
from dataclasses import dataclass

from . import order_kinds
from .faults import FaultSwitches
from .feed import DEFAULT_FEED_CONFIG, FeedQueue, filter_passes, parse_feed_config
from .invoices import InvoicesMixin
from .hooks import HookDispatcher
from .orders import STATUS_DESCRIPTIONS, OrderFactory
from .persistence import FORMAT, StateKeeper
from .util import hex_id, iso_offset, iso_z
from .vtex_api import ApiError, VtexApiMixin, vtex_error

CREATION_PATH = ["order-created", "payment-pending", "payment-approved", "window-to-cancel", "ready-for-handling"]
NOT_CANCELABLE = ("invoice", "invoiced")

__all__ = ["Sandbox", "Account", "ApiError", "CREATION_PATH"]


@dataclass(frozen=True)
class Account:
    name: str
    app_key: str
    app_token: str


class Sandbox(VtexApiMixin, InvoicesMixin):
    def __init__(self, seed=None, allow_http_hooks=True, hook_max_attempts=4, hook_backoff_s=0.2,
                 state_file=None, save_interval_s=0.5):
        self.seed = seed
        self.allow_http_hooks = allow_http_hooks
        self._lock = threading.RLock()
        derived = (lambda n: None) if seed is None else (lambda n: seed * 7919 + n)
        self._rng = random.Random(seed)             # orders
        self._id_rng = random.Random(derived(1))    # event ids, handles, receipts
        self.faults = FaultSwitches(random.Random(derived(2)))
        self.factory = OrderFactory(self._rng)
        self._accounts = {}   # app key -> Account
        self._stores = {}     # account name -> {"sequence": int, "orders": [order ids]}
        self._orders = {}     # order id -> {"data", "store", "changed_at"}
        self._feeds = {}      # app key -> FeedQueue
        self._hooks = {}      # app key -> {"filter", "hook": {"url", "headers"}}
        self._events = collections.deque(maxlen=10000)
        self._offset = 0.0
        self._generators = {}
        self._timers = set()
        self._version = 0     # bumped by every change the state file keeps
        self.hooks = HookDispatcher(max_attempts=hook_max_attempts, backoff_s=hook_backoff_s,
                                    on_result=self._hook_result)
        self.reset_stats()
        self.restored = False
        self._keeper = None
        if state_file is not None:
            keeper = StateKeeper(self, state_file, interval_s=save_interval_s)
            self.restored = keeper.load()  # raises StateFileError on a file it cannot use
            self._keeper = keeper.start()

    # --- clock ----------------------------------------------------------------------
    def now(self):
        return time.time() + self._offset

    def advance_time(self, seconds):
        with self._lock:
            self._offset += float(seconds)
            self._touch()

    # --- state file -----------------------------------------------------------------
    def _touch(self):
        """Record a change the state file keeps (callers hold the lock)."""
        self._version += 1

    def state_version(self):
        with self._lock:
            return self._version

    def dump_state(self):
        """``(version, state)``: everything a restart must find again, as JSON-ready data."""
        with self._lock:
            state = {
                "format": FORMAT,
                "clock_offset": self._offset,
                "random": {"orders": _rng_state(self._rng), "ids": _rng_state(self._id_rng)},
                "accounts": [{"account_name": a.name, "app_key": a.app_key, "app_token": a.app_token}
                             for a in self._accounts.values()],
                "stores": copy.deepcopy(self._stores),
                "orders": copy.deepcopy(self._orders),
                "feeds": {key: feed.to_state() for key, feed in self._feeds.items()},
                "hooks": copy.deepcopy(self._hooks),
                "events": list(self._events),
            }
            return self._version, state

    def restore_state(self, state):
        """Replace this sandbox's stores, orders, feeds and hooks with a ``dump_state()`` result."""
        with self._lock:
            self._offset = float(state.get("clock_offset", 0.0))
            randoms = state.get("random") or {}
            if randoms.get("orders"):
                self._rng.setstate(_rng_from(randoms["orders"]))
            if randoms.get("ids"):
                self._id_rng.setstate(_rng_from(randoms["ids"]))
            self._accounts = {a["app_key"]: Account(a["account_name"], a["app_key"], a["app_token"])
                              for a in state.get("accounts", [])}
            self._stores = copy.deepcopy(state.get("stores", {}))
            self._orders = copy.deepcopy(state.get("orders", {}))
            self._feeds = {key: FeedQueue.from_state(feed) for key, feed in state.get("feeds", {}).items()}
            self._hooks = copy.deepcopy(state.get("hooks", {}))
            self._events.clear()
            self._events.extend(state.get("events", []))
            self._touch()

    def save_state(self):
        """Write the state file now (no-op without ``state_file``); return True when written."""
        return self._keeper.save() if self._keeper else False

    # --- accounts -------------------------------------------------------------------
    def add_account(self, account_name, app_key, app_token, feed_config=DEFAULT_FEED_CONFIG):
        """Register an app key for a store. ``feed_config`` is a POST /feed/config body, or None for no feed."""
        parsed = parse_feed_config(copy.deepcopy(feed_config)) if feed_config is not None else None
        with self._lock:
            existing = self._accounts.get(app_key)
            if existing and existing.name != account_name:
                raise ValueError(f"app key {app_key!r} already belongs to {existing.name!r}")
            account = Account(account_name, app_key, app_token)
            self._accounts[app_key] = account
            self._touch()
            self._stores.setdefault(account_name, {"sequence": 500000, "orders": []})
            if existing is None:
                if parsed:
                    self._feeds[app_key] = FeedQueue(parsed)
            return account

    def accounts(self):
        with self._lock:
            return list(self._accounts.values())

    def account(self, app_key):
        with self._lock:
            try:
                return self._accounts[app_key]
            except KeyError:
                raise KeyError(f"unknown app key {app_key!r}") from None

    def authenticate(self, app_key, app_token):
        with self._lock:
            account = self._accounts.get(app_key or "")
            return account if account and app_token and account.app_token == app_token else None

    # --- orders ---------------------------------------------------------------------
    def create_orders(self, app_key, count=1, status="ready-for-handling", kind="plain", *,
                      seller_id=order_kinds.DEFAULT_SELLER_ID, seller_name=order_kinds.DEFAULT_SELLER_NAME,
                      split_sellers=None, gift_card_amount=None):
        """Create ``count`` orders, each walking the creation path up to ``status``; return their ids.

        ``kind`` is one of ``order_kinds.ORDER_KINDS`` (see that module): ``seller`` orders are sold by
        ``seller_id``; a ``split`` purchase makes two orders per count (``-01``, ``-02``), sold by
        ``split_sellers`` (default: the account, then ``seller_id``); ``gift_card_amount`` is in cents.
        """
        if status not in CREATION_PATH:
            raise ValueError(f"status must be one of {CREATION_PATH}")
        if kind not in order_kinds.ORDER_KINDS:
            raise ValueError(f"kind must be one of {order_kinds.ORDER_KINDS}")
        path = CREATION_PATH[: CREATION_PATH.index(status) + 1]
        with self._lock:
            store_name = self.account(app_key).name
            store = self._stores[store_name]
            ids = []
            for _ in range(int(count)):
                order_id = self.factory.new_order_id()
                while self._taken(order_id, kind):
                    order_id = self.factory.new_order_id()
                number = order_id.rsplit("-", 1)[0]
                if kind == "split":
                    sellers = list(split_sellers or (order_kinds.OWN_SELLER, seller_id))
                    records = []
                    for part, part_seller in enumerate(sellers, start=1):
                        record = self._build_locked(store_name, store, f"{number}-{part:02d}", path[0])
                        order_kinds.make_split_part(record["data"], number, part)
                        if part_seller != order_kinds.OWN_SELLER:
                            order_kinds.make_seller(record["data"], part_seller, seller_name)
                        records.append(record)
                else:
                    oid = order_kinds.seller_order_id(number) if kind == "seller" else order_id
                    record = self._build_locked(store_name, store, oid, path[0])
                    data = record["data"]
                    if kind == "seller":
                        order_kinds.make_seller(data, seller_id, seller_name)
                        data["orderGroup"] = oid.rsplit("-", 1)[0]
                    elif kind == "marketplace":
                        order_kinds.make_marketplace(data, self._rng)
                    elif kind == "pickup":
                        order_kinds.make_pickup(data, self._rng)
                    elif kind == "gift_card":
                        order_kinds.make_gift_card(data, self._rng, gift_card_amount)
                    records = [record]
                for record in records:
                    self._add_locked(store, record, path)
                    ids.append(record["data"]["orderId"])
            return ids

    def _taken(self, order_id, kind):
        number = order_id.rsplit("-", 1)[0]
        candidates = {"seller": [order_kinds.seller_order_id(number)],
                      "split": [f"{number}-{part:02d}" for part in range(1, 10)]}.get(kind, [order_id])
        return any(c in self._orders for c in candidates)

    def _build_locked(self, store_name, store, order_id, first_status):
        store["sequence"] += 1
        now = max(self.now(), store.get("last_created", 0.0) + 0.0001)  # strictly increasing
        store["last_created"] = now
        data = self.factory.build(order_id, store["sequence"], store_name, now, status=first_status)
        return {"data": data, "store": store_name, "changed_at": now}

    def _add_locked(self, store, record, path):
        """Register a built order and walk it along ``path`` (its first status is the creation event)."""
        data = record["data"]
        record["domain"] = order_kinds.event_domain(data)
        self._orders[data["orderId"]] = record
        store["orders"].append(data["orderId"])
        self._emit_locked(record, path[0], "", record["changed_at"], record["changed_at"])
        for nxt in path[1:]:
            self._transition_locked(record, nxt)

    def _record(self, app_key, order_id):
        """The order record visible to this app key (accepts ``seq<sequence>``), else ApiError 404."""
        with self._lock:
            store_name = self.account(app_key).name
            record = self._orders.get(order_id)
            if record is None and order_id.startswith("seq"):
                record = next((r for r in self._orders.values() if r["store"] == store_name
                               and r["data"]["sequence"] == order_id[3:]), None)
            if record is None or record["store"] != store_name:
                raise vtex_error(404, "OMS001", "Order not found")
            return record

    def app_key_of(self, order_id):
        """Some app key of the store that owns this order (for the control API)."""
        with self._lock:
            record = self._orders.get(order_id)
            key = record and next((k for k, a in self._accounts.items() if a.name == record["store"]), None)
            if key is None:
                raise vtex_error(404, "OMS001", "Order not found")
            return key

    def order_status(self, app_key, order_id):
        return self._record(app_key, order_id)["data"]["status"]

    def order(self, app_key, order_id):
        with self._lock:
            return copy.deepcopy(self._record(app_key, order_id)["data"])

    def orders(self, app_key):
        with self._lock:
            store = self._stores[self.account(app_key).name]
            return [copy.deepcopy(self._orders[oid]["data"]) for oid in store["orders"]]

    def set_status(self, app_key, order_id, status):
        """Operator-style status change (any status string); emits the event."""
        with self._lock:
            self._transition_locked(self._record(app_key, order_id), status)

    def cancel_order_by_customer(self, app_key, order_id, reason="Cancelado pelo cliente"):
        """The customer cancels: ``cancel`` then ``canceled``. Raises ApiError 403 when invoiced."""
        return self._cancel(app_key, order_id, reason, by_user=True)

    def _cancel(self, app_key, order_id, reason, by_user):
        with self._lock:
            record = self._record(app_key, order_id)
            data = record["data"]
            if data["status"] in NOT_CANCELABLE:
                raise vtex_error(403, "OMS013", f"Order {data['orderId']} cannot be canceled: it is {data['status']}")
            if self.partially_invoiced(record):
                raise vtex_error(400, "1", f"Order {data['orderId']} is partially invoiced and cannot be canceled")
            if data["status"] != "canceled":
                data["cancelReason"] = reason
                if data["status"] != "cancel":
                    self._transition_locked(record, "cancel")
                self._transition_locked(record, "canceled")
                data["cancellationData"] = {
                    "RequestedByUser": by_user, "RequestedBySystem": False, "RequestedBySellerNotification": False,
                    "RequestedByPaymentNotification": False, "Reason": reason, "CancellationDate": data["lastChange"],
                }
                record["receipt"] = hex_id(self._id_rng).lower()
            if "receipt" not in record:  # canceled by set_status(): still answer like VTEX
                record["receipt"] = hex_id(self._id_rng).lower()
                self._touch()
            return {"date": data["lastChange"], "orderId": data["orderId"], "receipt": record["receipt"]}

    def _transition_locked(self, record, status):
        data = record["data"]
        last_state, last_ts = data["status"], record["changed_at"]
        ts = max(self.now(), last_ts + 0.0001)
        record["changed_at"] = ts
        data["status"] = status
        data["statusDescription"] = STATUS_DESCRIPTIONS.get(status, status)
        data["lastChange"] = iso_offset(ts)
        if status == "payment-approved" and not data["authorizedDate"]:
            data["authorizedDate"] = iso_offset(ts)
        if status == "invoiced":
            data["invoicedDate"] = iso_offset(ts)
        if status in NOT_CANCELABLE or status in ("cancel", "canceled"):
            data["allowCancellation"] = False
        self._emit_locked(record, status, last_state, last_ts, ts)

    def _emit_locked(self, record, state, last_state, last_ts, ts):
        data = record["data"]
        self._touch()
        domain = record.get("domain", order_kinds.FULFILLMENT)
        base = {"domain": domain, "state": state, "lastState": last_state or "",
                "orderId": data["orderId"], "lastChange": iso_z(last_ts), "currentChange": iso_z(ts)}
        self._events.append(dict(base, account=record["store"]))
        now = self.now()
        for app_key, account in self._accounts.items():
            if account.name != record["store"]:
                continue
            feed = self._feeds.get(app_key)
            if feed is not None and filter_passes(feed.config["filter"], state, data, feed.fired):
                event = {"eventId": hex_id(self._id_rng), **base}
                feed.enqueue(event, now)
                self._enqueued += 1
                if self.faults.fires("duplicate"):
                    feed.enqueue(event, now)
                    self._enqueued += 1
                if self.faults.fires("twin"):
                    feed.enqueue(dict(event, eventId=hex_id(self._id_rng)), now)
                    self._enqueued += 1
            hook = self._hooks.get(app_key)
            if hook is not None and filter_passes(hook["filter"], state, data, hook.setdefault("fired", [])):
                body = {"Domain": domain, "OrderId": data["orderId"], "State": state,
                        "LastState": last_state or "", "LastChange": base["lastChange"],
                        "CurrentChange": base["currentChange"],
                        "Origin": {"Account": account.name, "Key": app_key}}
                self.hooks.submit(hook["hook"]["url"], hook["hook"]["headers"], body)

    def events(self, order_id=None):
        """Every status change so far (feed filters aside), oldest first."""
        with self._lock:
            return [dict(e) for e in self._events if order_id is None or e["orderId"] == order_id]

    def feed_depth(self, app_key):
        with self._lock:
            feed = self._feeds.get(app_key)
            if feed is None:
                return 0
            feed.expire(self.now())
            return feed.depth()

    # --- background order generator -------------------------------------------------
    def start_generator(self, app_key, orders_per_minute=6, kinds=("plain",)):
        """Create an order every 60/orders_per_minute seconds, taking ``kinds`` in turn."""
        self.account(app_key)
        kinds = tuple(kinds) or ("plain",)
        for kind in kinds:
            if kind not in order_kinds.ORDER_KINDS:
                raise ValueError(f"kind must be one of {order_kinds.ORDER_KINDS}")
        self.stop_generator(app_key)
        interval = 60.0 / float(orders_per_minute)
        stop = threading.Event()

        def run():
            turn = 0
            while not stop.wait(interval):
                try:
                    self.create_orders(app_key, 1, kind=kinds[turn % len(kinds)])
                except KeyError:
                    return
                turn += 1

        thread = threading.Thread(target=run, name=f"sandbox-generator-{app_key}", daemon=True)
        with self._lock:
            self._generators[app_key] = (stop, thread)
        thread.start()

    def stop_generator(self, app_key=None):
        with self._lock:
            keys = [app_key] if app_key is not None else list(self._generators)
            stopped = [self._generators.pop(k) for k in keys if k in self._generators]
        for stop, thread in stopped:
            stop.set()
            thread.join(timeout=2)

    def _schedule(self, delay_s, fn, *args):
        def run():
            with self._lock:
                self._timers.discard(timer)
            fn(*args)

        timer = threading.Timer(delay_s, run)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def close(self):
        """Stop generators, pending timers and hook workers; write the state file one last time."""
        self.stop_generator()
        with self._lock:
            timers, self._timers = list(self._timers), set()
        for timer in timers:
            timer.cancel()
        self.hooks.stop()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()

    # --- statistics -----------------------------------------------------------------
    def reset_stats(self):
        with self._lock:
            self._calls = collections.Counter()
            self._windows = collections.defaultdict(collections.deque)
            self._max_per_minute = {}
            self._committed = 0
            self._retrieved = 0
            self._enqueued = 0
            self._sh_calls = collections.Counter()
            self._sh_ok = collections.Counter()
            self._invoices_ok = collections.Counter()  # order id -> invoice calls that took effect
            self._hook_counts = collections.Counter()

    def record_call(self, route, order_id=None):
        with self._lock:
            now = self.now()
            self._calls[route] += 1
            window = self._windows[route]
            window.append(now)
            while window and window[0] <= now - 60.0:
                window.popleft()
            self._max_per_minute[route] = max(self._max_per_minute.get(route, 0), len(window))
            if route == "start_handling" and order_id:
                self._sh_calls[order_id] += 1

    def _hook_result(self, kind, delivery):
        with self._lock:
            self._hook_counts[kind] += 1

    def stats(self):
        with self._lock:
            now = self.now()
            depth = {}
            for app_key, feed in self._feeds.items():
                feed.expire(now)
                depth[app_key] = feed.depth()
            return {
                "calls": dict(self._calls),
                "max_per_minute": dict(self._max_per_minute),
                "committed": self._committed,
                "retrieved": self._retrieved,
                "enqueued": self._enqueued,
                "start_handling_calls": dict(self._sh_calls),
                "start_handling_ok": dict(self._sh_ok),
                "invoices_ok": dict(self._invoices_ok),
                "feed_depth": sum(depth.values()),
                "feed_depth_by_app_key": depth,
                "statuses": {oid: r["data"]["status"] for oid, r in self._orders.items()},
                "hook_attempts": self._hook_counts["attempt"],
                "hook_delivered": self._hook_counts["delivered"],
                "hook_failed": self._hook_counts["failed"],
            }


def _rng_state(rng):
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from(saved):
    version, internal, gauss = saved
    return version, tuple(internal), gauss
