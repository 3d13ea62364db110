"""Dispatch: claim a lot of orders with due work, fetch each once, check its VTEX status, call adapters.

Work per lot, not per order: the lot is claimed with one statement, the orders are fetched and
delivered concurrently (threads that wait on HTTP and write nothing), and the lot's outcomes
(snapshots, attempts, sync statuses, breaker counts, start-handling states) are written by a few
set-based statements from the dispatching thread. The promises hold per order:

- the attempt row of every adapter call is saved (one INSERT for the lot, committed) before any
  call of the lot goes out, so a SIGKILL leaves a 'running' attempt that recovery closes;
- every status change is a conditional update (status still pending; start-handling still
  claimed), so an operator's action or another worker is never overwritten;
- start-handling is claimed by one conditional UPDATE before it is called, at most once;
- no transaction is held across an HTTP call: the statements run between the lot's phases.

Each order is claimed as a whole (a lease on the Order row), so its sends and cancels never run at
the same time; its syncs run one after the other, in ACTION_ORDER, inside the lot.
"""
import itertools
import logging
import os
import threading
import time
import traceback
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Case, F, Min, Q, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Now
from django.utils import timezone

from integration.bounds import Unstorable, clean_json, clean_text, max_length_of, storable_text
from integration.pipeline import breaker, start_handling
from integration.pipeline.backoff import delay_after
from integration.pipeline.failure_log import log_failed_delivery
from integration.pipeline.leases import new_owner_id, release_lease, take_lease
from integration.models import (
    AttemptOutcome, Order, OrderSync, RuleAction, StartHandlingState, SyncAttempt, SyncStatus,
)
from integration.plugins.contract import AdapterError
from integration.plugins.events import SyncInfo
from integration.plugins.manager import get_registry, notify
from integration.plugins.parsed_order import InvalidOrder, parse_order
from integration.redaction import excerpt, redact
from integration.vtex import errors
from integration.pipeline.vtex_access import client_for, http_only_thread, look_up_routes, queue_wait
from integration.vtex.statuses import READY_FOR_HANDLING

log = logging.getLogger(__name__)
ACTION_ORDER = {RuleAction.SEND: 0, RuleAction.STATUS: 1, RuleAction.CANCEL: 2}
CANCELED_VTEX_STATUSES = {"canceled", "cancel"}
# Statuses an order reaches only after ready-for-handling: waiting for it would wait forever.
PAST_READY_STATUSES = {"start-handling", "handling", "ready-for-invoicing", "invoice", "invoiced"}
ORDER_LEASE = {"owner_field": "claimed_by", "until_field": "claimed_until"}
NEVER_SENT = "The order was never delivered to this adapter; nothing to cancel."
# Rows per set-based UPDATE: each row costs a few parameters, well under every database's limit.
ROWS_PER_STATEMENT = 200
_successes = itertools.count()  # which successful attempts keep their excerpts (SUCCESS_EXCERPT_EVERY)


@dataclass
class DispatchReport:
    orders: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    held: int = 0
    postponed: int = 0
    waiting: int = 0
    start_handling: dict = field(default_factory=dict)

    def add(self, other):
        for name in ("orders", "succeeded", "retrying", "failed", "skipped", "held", "postponed", "waiting"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.start_handling.items():
            self.start_handling[k] = self.start_handling.get(k, 0) + v

    def line(self):
        sh = ", ".join(f"{k} {v}" for k, v in sorted(self.start_handling.items())) or "none"
        return (f"dispatched {self.orders} orders: {self.succeeded} delivered, {self.retrying} to retry, "
                f"{self.failed} failed, {self.skipped} skipped, {self.held} held, {self.postponed} postponed, "
                f"{self.waiting} waiting for ready-for-handling; start-handling: {sh}")


def due_syncs():
    """Pending syncs whose time has come, on an active, unpaused store and an enabled, installed
    binding whose circuit breaker is not open."""
    return OrderSync.objects.filter(
        Q(binding__breaker_open_until__isnull=True) | Q(binding__breaker_open_until__lte=Now()),
        status=SyncStatus.PENDING, next_attempt_at__lte=Now(), binding__enabled=True,
        binding__adapter_key__in=list(get_registry().adapters), order__account__active=True, order__account__paused=False,
    )


def _lease_free():
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=Now())


def _start_handling_due():
    # Not a canceled order: start-handling is never called for one, and claiming it anyway
    # took a slot of every batch, forever, once its gating sends were all delivered.
    return Order.objects.filter(
        _lease_free(), start_handling_state=StartHandlingState.PENDING, start_handling_due_at__lte=Now(),
        canceled=False, account__active=True, account__paused=False,
    )


def _claimable_syncs():
    """Due syncs whose order no dispatcher holds."""
    return due_syncs().filter(Q(order__claimed_until__isnull=True) | Q(order__claimed_until__lt=Now()))


def claim_due_orders(owner, limit, account_id=None):
    syncs = _claimable_syncs()
    start_handling_due = _start_handling_due()
    if account_id is not None:
        syncs = syncs.filter(order__account_id=account_id)
        start_handling_due = start_handling_due.filter(account_id=account_id)
    ids = list(syncs.values("order_id").annotate(due=Min("next_attempt_at")).order_by("due").values_list("order_id", flat=True)[:limit])
    if len(ids) < limit:
        ids += list(start_handling_due.exclude(pk__in=ids).values_list("pk", flat=True)[: limit - len(ids)])
    if not ids:
        return []
    # One conditional UPDATE: on PostgreSQL a concurrent claimer waits on the row lock and then
    # re-checks the condition; on SQLite the IMMEDIATE transaction serialises the two.
    take_lease(Order.objects.filter(pk__in=ids), owner, settings.SYNC_CLAIM_TTL, **ORDER_LEASE)
    return list(Order.objects.filter(pk__in=ids, claimed_by=owner).values_list("pk", flat=True))


def dispatch_batch(*, owner=None, limit=None, account_id=None, concurrency=None):
    """Claim one lot of orders and work it; returns what happened."""
    owner = owner or new_owner_id("dispatch")
    limit = limit or settings.DISPATCH_BATCH_SIZE
    concurrency = settings.DISPATCH_CONCURRENCY if concurrency is None else concurrency
    report = DispatchReport()
    order_ids = claim_due_orders(owner, limit, account_id)
    if not order_ids:
        return report
    try:
        # The claimed orders and their due syncs in two queries for the lot, not two per order.
        # Not the last snapshot (VTEX's 8 KB order JSON, decoded per row): the fetch replaces it.
        orders = Order.objects.select_related("account").defer("snapshot").in_bulk(order_ids)
        syncs = defaultdict(list)
        for sync in due_syncs().filter(order_id__in=order_ids).select_related("binding"):
            syncs[sync.order_id].append(sync)
        lot = [_OrderWork(orders[pk], syncs.get(pk, [])) for pk in order_ids if pk in orders]
        _work_lot(lot, owner, concurrency)
        for work in lot:
            report.add(work.report)
    except Exception as exc:  # the lot's own statements failed: each order's due syncs get an attempt
        log.exception("dispatch of a lot of %s orders failed unexpectedly", len(order_ids))
        tb = traceback.format_exc()
        report = DispatchReport(orders=len(order_ids))
        for pk in order_ids:
            _record_unexpected(pk, owner, None, exc, tb, report)
    finally:
        # One update releases the lot (an order done early stays claimed until then: nothing of
        # it is due, and a new event for it waits at most the rest of the lot).
        release_lease(Order.objects.filter(pk__in=order_ids), owner, **ORDER_LEASE)
    return report


def dispatch_due(*, budget=None, account_id=None, owner=None, concurrency=None, then_any_store=False):
    """Dispatch lots until nothing is due or the time budget is spent.

    `then_any_store`: after the first lot of the store `account_id`, each lot is taken from the
    next store (in turn) that has work due, this one included, for the rest of the budget. A
    store's dispatch is enqueued when its intake stores a lot, one queued at a time; with more
    stores than free workers, a dispatch that kept to its own store held its worker until that
    store was drained while another store's waited, and that store, dispatched last and alone,
    ran into its own rate caps at the end of a burst. Taking the stores in turn works every
    backlog at once, each store's calls under its own caps; a lot stays one store's. Of the
    stores in turn, the first whose VTEX caps (get order, start-handling) are not booked ahead
    by the lots already under way is taken (`_least_queued`): a worker never sleeps through one
    store's cap while another store's lot could go."""
    budget = settings.DISPATCH_BUDGET if budget is None else budget
    started = time.monotonic()
    total = DispatchReport()
    idle_turns, stores, listed_at, dropped = 0, [], float("-inf"), False
    while time.monotonic() - started < budget:
        report = dispatch_batch(owner=owner, account_id=account_id, concurrency=concurrency)
        total.add(report)
        if not then_any_store:
            if not report.orders:
                break
            continue
        idle_turns = 0 if report.orders else idle_turns + 1
        if not report.orders and account_id in stores:
            stores.remove(account_id)
            dropped = True
        # The stores with due work: listed again when the list runs out or is STORES_LISTED_FOR
        # old (a query of every due sync costs about 15 ms with 2,000 due: not one per lot), and
        # once it is STORES_RELISTED_AFTER_DROP old when a store left it. A store's lot comes up
        # empty while its feed is still being read (or the other dispatchers hold its due orders
        # for a moment); kept off the list for STORES_LISTED_FOR, that store got no lot for 6 s of
        # a 4-store burst while the three dispatchers took turns on the other three and queued for
        # their start-handling caps.
        age = time.monotonic() - listed_at
        if not stores or age > STORES_LISTED_FOR or (dropped and age > STORES_RELISTED_AFTER_DROP):
            stores, listed_at, dropped = _stores_with_due_work(), time.monotonic(), False
        # Nothing due anywhere, or only work other dispatchers claim first: this task is done.
        if not stores or idle_turns > 2:
            break
        later = [pk for pk in stores if account_id is not None and pk > account_id]
        account_id = _least_queued(later + [pk for pk in stores if pk not in later])
    return total


# A lot's calls: get order first, start-handling about a lot's work later.
LOT_ROUTES = ("get_order", "start_handling")
QUEUE_FREE_SECONDS = 0.25  # a store whose calls would wait less than this for their slots is free


def _least_queued(candidates):
    """The first of `candidates` (store pks, in turn) whose lot would not queue for its VTEX rate
    caps, else the one that would queue least. A worker that takes a store whose caps are booked
    seconds ahead sleeps through them: in a 4-store burst the three dispatchers queued together
    on one store's start-handling (2 s a lot) while another store's lots waited."""
    if len(candidates) == 1:
        return candidates[0]
    best, best_wait = candidates[0], float("inf")
    for pk in candidates:
        wait = queue_wait(pk, LOT_ROUTES)
        if wait < QUEUE_FREE_SECONDS:
            return pk
        if wait < best_wait:
            best, best_wait = pk, wait
    return best


STORES_LISTED_FOR = 5.0  # seconds a dispatch that takes the stores in turn keeps its list of them
STORES_RELISTED_AFTER_DROP = 1.0  # ... and how old the list may get once a store has left it


def _stores_with_due_work():
    """The stores (pks, in order) with due work that no other dispatcher holds."""
    stores = set(_claimable_syncs().values_list("order__account_id", flat=True).distinct())
    stores |= set(_start_handling_due().values_list("account_id", flat=True).distinct())
    return sorted(stores)


_pool = None  # (pid, size, ThreadPoolExecutor): the lots' threads, kept by the process across lots
_pool_lock = threading.Lock()


def _thread_pool(size):
    """This process's pool of at least `size` threads. Kept across lots: starting fifty threads a
    phase, three phases a lot, was 5 % of the hub's CPU. Made again in a forked child (the parent's
    threads do not exist there) and when a larger one is asked for."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] < size:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)  # its idle threads end; one still working finishes first
            _pool = (os.getpid(), size, ThreadPoolExecutor(max_workers=size, thread_name_prefix="dispatch"))
        return _pool[2]


def _in_threads(func, items, threads):
    """func(item) for every item, on up to `threads` threads of the process's pool. The work done
    there is HTTP; the rare statement of a VTEX client's route guard closes its connection at once
    (`http_only_thread`), and anything else left open (an adapter's own statement, if a plugin made
    one) is closed when the thread's share of the phase is done."""
    items = list(items)
    if not items:
        return []
    if threads <= 1 or len(items) == 1:
        return [func(item) for item in items]
    todo = deque(enumerate(items))
    results = [None] * len(items)

    def worker():
        try:
            with http_only_thread():
                while True:
                    try:
                        index, item = todo.popleft()
                    except IndexError:
                        return
                    results[index] = func(item)
        finally:
            connection.close()

    threads = min(threads, len(items))
    pool = _thread_pool(max(threads, settings.DISPATCH_CONCURRENCY))
    for future in [pool.submit(worker) for _ in range(threads)]:
        future.result()
    return results


# --------------------------------------------------------------------------------- one order's work

@dataclass
class _Call:
    """One adapter call of the lot: its attempt row exists (running) before the call goes out."""
    sync: OrderSync
    attempt: SyncAttempt
    needs_send_of: int | None = None  # a cancel whose send to the same binding runs in this lot
    ran: bool = False
    outcome: str | None = None
    permanent: bool = False
    error: str = ""
    finished: float = 0.0


class _OrderWork:
    """One claimed order in the lot: what was fetched, decided and done, kept in memory until
    the lot's statements write it."""

    def __init__(self, order, syncs):
        installed = get_registry().adapters
        self.order = order
        self.syncs = sorted((s for s in syncs if s.binding.adapter_key in installed),
                            key=lambda s: (ACTION_ORDER.get(s.action, 9), s.pk))
        for sync in self.syncs:
            sync.order = order  # the order (and its store) in memory: a failure's log line costs no query
            if sync.binding.account_id == order.account_id:
                sync.binding.account = order.account  # build_adapter reads the store's name: no query for it
        self.report = DispatchReport(orders=1)
        self.client = client_for(order.account)
        self.raw = None
        self.fetch_error = None  # (kind, message) when get order failed
        self.unexpected = None  # (exception, traceback) of a surprise while fetching
        self.parsed = None
        self.calls: list[_Call] = []
        self.writes: list[tuple] = []  # (kind, sync, values): sync outcomes, written per kind for the lot
        self.new_attempts: list[SyncAttempt] = []  # attempts with their final outcome (no adapter call)
        self.snapshot = None  # values for the Order row, once VTEX's answer is known to be storable

    # -- outcomes, in memory ---------------------------------------------------------------------
    def attempt(self, sync, outcome, error):
        self.new_attempts.append(SyncAttempt(sync=sync, number=sync.attempts + 1, duration_ms=0, outcome=outcome,
                                             error=excerpt(error, 4000)))

    def fail_or_retry(self, sync, error, *, permanent, counted=False):
        error = excerpt(error, 4000)  # redacted, bounded, storable
        if not counted:
            self.attempt(sync, AttemptOutcome.PERMANENT if permanent else AttemptOutcome.TRANSIENT, error)
        self.writes.append(("failed" if permanent or sync.attempts + 1 >= settings.SYNC_MAX_ATTEMPTS else "retry",
                            sync, {"error": error, "permanent": permanent}))

    def skip(self, sync, reason, *, attempt=True):
        if attempt:
            self.attempt(sync, AttemptOutcome.SKIPPED, reason)
        self.writes.append(("skipped", sync, {"hold_reason": reason}))

    def hold(self, sync, reason):
        self.attempt(sync, AttemptOutcome.HELD, reason)
        self.writes.append(("held", sync, {"hold_reason": reason}))

    def postpone(self, syncs, seconds, reason):
        for sync in syncs:
            self.writes.append(("postponed", sync, {"next_attempt_at": Now() + timedelta(seconds=seconds),
                                                    "last_error": redact(reason)}))
        self.report.postponed += len(syncs)

    def wait_for_ready(self, sync, status):
        """A "send once ready-for-handling" sync while VTEX says another status: stay pending and
        read the order again on READY_WAIT_SCHEDULE (no event needed), until READY_WAIT_MAX_CHECKS
        checks; then hold it for the operator. No attempt row per check: the sync shows the count
        and the next check, and the adapter's attempt count stays for adapter calls."""
        checks = sync.ready_checks + 1
        if checks > settings.READY_WAIT_MAX_CHECKS:
            return self.hold(sync, f"Waited for VTEX to say ready-for-handling through {checks - 1} checks; VTEX still "
                                   f"says '{status}'. Retry to wait again, or resolve it.")
        schedule = settings.READY_WAIT_SCHEDULE
        wait = schedule[min(checks, len(schedule)) - 1]
        reason = (f"Waiting for VTEX to say ready-for-handling (it says '{status}'): check {checks} of at most "
                  f"{settings.READY_WAIT_MAX_CHECKS}, the next in {wait} s.")
        self.writes.append(("waiting", sync, {"ready_checks": checks, "hold_reason": reason,
                                              "next_attempt_at": Now() + timedelta(seconds=wait)}))

    # -- phase 1, in a thread: VTEX's answer to get order (HTTP only) ----------------------------
    def fetch(self):
        if not self.syncs:
            return
        try:
            self.raw = self.client.get_order(self.order.order_id)
        except errors.RateLimited as exc:
            self.fetch_error = ("rate", exc)
        except errors.NotFound as exc:
            self.fetch_error = ("missing", exc)
        except errors.VtexError as exc:
            self.fetch_error = ("vtex", exc)
        except Exception as exc:  # one order's surprise must not take the lot down
            log.exception("dispatch of order pk=%s failed unexpectedly", self.order.pk)
            self.unexpected = (exc, traceback.format_exc())

    # -- phase 2, in the dispatching thread: decide, without statements --------------------------
    def plan(self, owner, delivered_sends):
        """What each sync does: an adapter call (planned here, attempt row made by the lot), or
        an outcome without one. `delivered_sends`: (order pk, binding pk) of sends already delivered."""
        if not self.syncs:
            return
        if self.unexpected:
            exc, tb = self.unexpected
            error = f"Unexpected error while dispatching the order: {type(exc).__name__}: {exc}"
            for sync in self.syncs:
                self.new_attempts.append(SyncAttempt(sync=sync, number=sync.attempts + 1, duration_ms=0, worker=owner,
                                                     outcome=AttemptOutcome.TRANSIENT, error=excerpt(error, 4000),
                                                     traceback=excerpt(tb, 8000)))
                self.fail_or_retry(sync, error, permanent=False, counted=True)
            return
        if self.fetch_error:
            kind, exc = self.fetch_error
            if kind == "rate":
                return self.postpone(self.syncs, exc.retry_after, f"VTEX rate limit on get order: {exc}")
            for sync in self.syncs:
                if kind == "missing":
                    self.fail_or_retry(sync, f"VTEX does not know this order: {exc}", permanent=True)
                else:
                    self.fail_or_retry(sync, f"Could not fetch the order from VTEX: {exc}", permanent=False)
            return
        order, raw = self.order, self.raw
        status = str(raw.get("status") or "") if isinstance(raw, dict) else ""
        try:  # the snapshot and status are stored: VTEX's answer must fit the columns first
            clean_json(raw, field="The order JSON")
            clean_text(status, field="The order status", max_length=max_length_of(Order, "vtex_status"))
        except Unstorable as exc:
            for sync in self.syncs:
                self.fail_or_retry(sync, f"VTEX's answer to get order cannot be stored: {exc}", permanent=False)
            return
        order.snapshot, order.vtex_status = raw, status
        order.canceled = order.canceled or status in CANCELED_VTEX_STATUSES
        self.snapshot = {"snapshot": raw, "vtex_status": status, "canceled": order.canceled}
        try:
            parsed = parse_order(raw)
        except InvalidOrder as exc:
            for sync in self.syncs:
                self.fail_or_retry(sync, f"The order JSON cannot be used: {exc}", permanent=True)
            return
        # Before any adapter and before start-handling: is this order the store's to fulfil?
        outside = order.account.outside_scope_reason(parsed.item_seller_ids())
        group = parsed.order_group if len(parsed.order_group) <= 64 else ""  # an id no VTEX order has: not grouped
        order.outside_scope_reason, order.order_group = outside, group
        self.snapshot.update(outside_scope_reason=outside, order_group=group)
        if outside:
            for sync in self.syncs:
                self.skip(sync, outside)
            return
        self.parsed = parsed
        sends_in_lot = {}
        for sync in self.syncs:
            if sync.action == RuleAction.SEND:
                if order.canceled:
                    self.skip(sync, "The order is canceled in VTEX; it was not sent.")
                    continue
                passed_ready = order.start_handling_state in (StartHandlingState.DONE, StartHandlingState.CONFLICT)
                if order.vtex_status != READY_FOR_HANDLING and not passed_ready:
                    if sync.wait_for_ready and order.vtex_status not in PAST_READY_STATUSES:
                        self.wait_for_ready(sync, order.vtex_status)
                    else:
                        self.hold(sync, f"VTEX says the order is '{order.vtex_status}', not ready-for-handling; "
                                        f"a send waits for the operator.")
                    continue
            needs_send_of = None
            if sync.action == RuleAction.CANCEL and (order.pk, sync.binding_id) not in delivered_sends:
                if sync.binding_id not in sends_in_lot:
                    self.skip(sync, NEVER_SENT)
                    continue
                needs_send_of = sends_in_lot[sync.binding_id]
            call = _Call(sync=sync, attempt=SyncAttempt(sync=sync, number=sync.attempts + 1, worker=owner),
                         needs_send_of=needs_send_of)
            if sync.action == RuleAction.SEND:
                sends_in_lot[sync.binding_id] = call
            self.calls.append(call)

    # -- phase 3, in a thread: the adapter calls (HTTP only) -------------------------------------
    def deliver(self, gate):
        for call in self.calls:
            try:
                self._deliver_one(call, gate)
            except Exception as exc:  # outside the adapter: a bug of ours, recorded on the attempt
                log.exception("delivery of sync pk=%s failed unexpectedly", call.sync.pk)
                call.ran = True
                self._finish(call, AttemptOutcome.TRANSIENT, time.monotonic(), error=f"{type(exc).__name__}: {exc}",
                             tb=traceback.format_exc())
                self.fail_or_retry(call.sync, f"{type(exc).__name__}: {exc}", permanent=False, counted=True)

    def _deliver_one(self, call, gate):
        sync = call.sync
        if call.needs_send_of is not None and call.needs_send_of.outcome != AttemptOutcome.SUCCEEDED:
            call.outcome = AttemptOutcome.SKIPPED
            call.attempt.outcome, call.attempt.error = AttemptOutcome.SKIPPED, NEVER_SENT
            return self.skip(sync, NEVER_SENT, attempt=False)
        if not gate.admit(sync.binding_id):
            call.outcome = "postponed"  # no attempt: its row is deleted with the lot's
            return self.postpone([sync], gate.wait_seconds(sync.binding_id), breaker.POSTPONED)
        started = time.monotonic()
        try:
            adapter = sync.binding.build_adapter()
        except Exception as exc:
            call.ran = True
            self._finish(call, AttemptOutcome.TRANSIENT, started, error=f"The adapter could not be set up: {redact(exc)}")
            return self.fail_or_retry(sync, f"The adapter could not be set up: {redact(exc)}", permanent=False, counted=True)
        call.ran = True
        try:
            delivery = adapter.perform(sync.action, self.parsed, self.raw, sync.idempotency_key, state=sync.state)
        except AdapterError as exc:
            outcome = AttemptOutcome.PERMANENT if exc.permanent else AttemptOutcome.TRANSIENT
            self._finish(call, outcome, started, error=str(exc), request=exc.request_excerpt, response=exc.response_excerpt)
            gate.record(sync.binding_id, ok=False, counts=not exc.permanent)
            return self.fail_or_retry(sync, str(exc), permanent=exc.permanent, counted=True)
        except Exception as exc:  # any other exception counts as transient, with its traceback
            self._finish(call, AttemptOutcome.TRANSIENT, started, error=f"{type(exc).__name__}: {exc}", tb=traceback.format_exc())
            gate.record(sync.binding_id, ok=False, counts=True)
            return self.fail_or_retry(sync, f"{type(exc).__name__}: {exc}", permanent=False, counted=True)
        finally:
            adapter.close()
        gate.record(sync.binding_id, ok=True)
        if next(_successes) % settings.SUCCESS_EXCERPT_EVERY:
            self._finish(call, AttemptOutcome.SUCCEEDED, started)  # a success not sampled: nothing to redact or store
        else:
            self._finish(call, AttemptOutcome.SUCCEEDED, started, request=getattr(delivery, "request_excerpt", ""),
                         response=getattr(delivery, "response_excerpt", "") or getattr(delivery, "detail", ""))
        reference = storable_text(str(getattr(delivery, "reference", "") or ""))[:200]
        self.writes.append(("succeeded", sync, {"erp_reference": reference}))

    def _finish(self, call, outcome, started, *, error="", tb="", request="", response=""):
        # Excerpts cut before they are redacted (redaction of a 4 KB excerpt, not of the whole body).
        a = call.attempt
        a.outcome, a.duration_ms = outcome, int((time.monotonic() - started) * 1000)
        a.error, a.traceback = excerpt(error, 4000), excerpt(tb, 8000)
        a.request_excerpt, a.response_excerpt = excerpt(request, 4000), excerpt(response, 4000)
        call.outcome, call.finished = outcome, time.monotonic()


# ------------------------------------------------------------------------------------- the lot

def _look_up_route(orders, route):
    # The pause and cap of the route (the VTEX client's name for it), looked up on this thread for
    # the phase's threads: they make HTTP calls, and a lookup of theirs costs a connection.
    for account_id in {o.account_id for o in orders}:
        look_up_routes(account_id, (route,))


def _work_lot(lot, owner, concurrency):
    # 1. get order, concurrently
    fetching = [w for w in lot if w.syncs]
    _look_up_route([w.order for w in fetching], "get_order")
    _in_threads(_OrderWork.fetch, fetching, concurrency)
    # 2. decide; the snapshots and the attempts of the coming calls in one statement each
    with_cancels = [w.order.pk for w in lot if any(s.action == RuleAction.CANCEL for s in w.syncs)]
    delivered = set()
    if with_cancels:
        delivered = set(OrderSync.objects.filter(order_id__in=with_cancels, action=RuleAction.SEND,
                                                 status__in=(SyncStatus.SUCCEEDED, SyncStatus.DELIVERED_BY_HAND))
                        .values_list("order_id", "binding_id"))
    for work in lot:
        work.plan(owner, delivered)
    _update_rows(Order.objects.all(), {w.order.pk: w.snapshot for w in lot if w.snapshot}, snapshot_at=Now())
    running = [call.attempt for w in lot for call in w.calls]
    if running:
        # Saved and committed before any call goes out: what survives a SIGKILL of this worker.
        SyncAttempt.objects.bulk_create(running)
        if any(a.pk is None for a in running):  # a database that returns no keys from a bulk insert
            _fill_attempt_keys(running, owner)
    # 3. the adapter calls, concurrently; a binding's breaker is kept in memory for the lot
    gate = breaker.LotGate.for_bindings({c.sync.binding_id for w in lot for c in w.calls})
    _in_threads(lambda work: work.deliver(gate), [w for w in lot if w.calls], concurrency)
    # 4. the outcomes, a few statements for the lot
    _record_outcomes(lot)
    gate.save()
    # 5. start-handling: eligibility and claim for the lot, the calls concurrently, the results
    ran = [w.order for w in fetching]
    claimed = start_handling.claim_for_lot([w.order for w in lot], ran_pks={o.pk for o in ran}, owner=owner)
    by_pk = {w.order.pk: w for w in lot}
    _look_up_route(claimed, "start_handling")
    results = _in_threads(lambda order: (order, start_handling.call(order, by_pk[order.pk].client)), claimed, concurrency)
    for order, state in start_handling.record_lot(results).items():
        report = by_pk[order].report
        report.start_handling[state] = report.start_handling.get(state, 0) + 1


def _fill_attempt_keys(attempts, owner):
    keys = dict(SyncAttempt.objects.filter(sync_id__in=[a.sync_id for a in attempts], worker=owner,
                                           outcome=AttemptOutcome.RUNNING).values_list("sync_id", "pk"))
    for a in attempts:
        a.pk = keys.get(a.sync_id)


def _record_outcomes(lot):
    # Attempts: the ones without a call in one INSERT, the completed calls in one UPDATE, and the
    # ones a breaker kept from going out deleted (they never went out).
    final = [a for w in lot for a in w.new_attempts]
    calls = [c for w in lot for c in w.calls]
    done = {c.attempt.pk: {"outcome": c.attempt.outcome, "duration_ms": c.attempt.duration_ms or 0, "error": c.attempt.error,
                           "traceback": c.attempt.traceback, "request_excerpt": c.attempt.request_excerpt,
                           "response_excerpt": c.attempt.response_excerpt}
            for c in calls if c.outcome not in (None, "postponed")}
    unused = [c.attempt.pk for c in calls if c.outcome in (None, "postponed")]
    if final:
        SyncAttempt.objects.bulk_create(final)
    _update_rows(SyncAttempt.objects.all(), done)
    if unused:
        SyncAttempt.objects.filter(pk__in=unused, outcome=AttemptOutcome.RUNNING).delete()
    # Syncs: one conditional UPDATE per kind of outcome (status still pending).
    by_kind = defaultdict(list)
    for work in lot:
        for kind, sync, values in work.writes:
            by_kind[kind].append((work, sync, values))
    for kind, rows in by_kind.items():
        WRITERS[kind](rows)


def _pending():
    return OrderSync.objects.filter(status=SyncStatus.PENDING)


def _write_succeeded(rows):
    updated = _update_rows(_pending(), {sync.pk: values for _, sync, values in rows},
                           status=SyncStatus.SUCCEEDED, attempts=F("attempts") + 1, finished_at=Now(), last_error="",
                           hold_reason="", next_attempt_at=None)
    mine = _written(rows, updated, SyncStatus.SUCCEEDED)
    observed = _has_observers("sync_succeeded")
    for work, sync, values in rows:
        if sync.pk not in mine:
            continue
        work.report.succeeded += 1
        if observed:
            # The row as just written, from memory: re-reading it cost a query per delivery.
            sync.status, sync.attempts, sync.finished_at = SyncStatus.SUCCEEDED, sync.attempts + 1, timezone.now()
            sync.last_error = sync.hold_reason = ""
            sync.erp_reference, sync.next_attempt_at = values["erp_reference"], None
            notify("sync_succeeded", sync=SyncInfo.of(sync))


def _write_retry(rows):
    """Transient failures under the maximum: the next try on the backoff schedule."""
    values, waits = {}, {}
    for _, sync, v in rows:
        waits[sync.pk] = wait = delay_after(sync.attempts + 1)
        values[sync.pk] = {"attempts": sync.attempts + 1, "last_error": v["error"],
                           "next_attempt_at": Now() + timedelta(seconds=wait)}
    # updated_at too (update() skips auto_now): the wait is then measured from this attempt.
    updated = _update_rows(_pending(), values, updated_at=Now())
    mine = _written(rows, updated, SyncStatus.PENDING)
    for work, sync, v in rows:
        if sync.pk in mine:
            work.report.retrying += 1
            _log_failure(sync, sync.attempts + 1, "transient", timezone.now() + timedelta(seconds=waits[sync.pk]), v["error"])


def _write_failed(rows):
    """Failed for the operator (rare): one conditional update each, and the observers told."""
    for work, sync, v in rows:
        attempts, error, permanent = sync.attempts + 1, v["error"], v["permanent"]
        why = error if permanent else f"{error} (gave up after {attempts} attempts)"
        if _pending().filter(pk=sync.pk).update(status=SyncStatus.FAILED, attempts=attempts, last_error=why,
                                                finished_at=Now(), next_attempt_at=None):
            work.report.failed += 1
            _log_failure(sync, attempts, "permanent" if permanent else "failed", None, error)
            row = OrderSync.objects.select_related("order__account", "binding").get(pk=sync.pk)
            notify("sync_failed", sync=SyncInfo.of(row), error=why)


def _write_skipped(rows):
    updated = _update_rows(_pending(), {s.pk: v for _, s, v in rows},
                           status=SyncStatus.SKIPPED, finished_at=Now(), next_attempt_at=None)
    _count(rows, _written(rows, updated, SyncStatus.SKIPPED), "skipped")


def _write_held(rows):
    updated = _update_rows(_pending(), {s.pk: v for _, s, v in rows}, status=SyncStatus.HELD, next_attempt_at=None)
    _count(rows, _written(rows, updated, SyncStatus.HELD), "held")


def _write_waiting(rows):
    updated = _update_rows(_pending(), {s.pk: v for _, s, v in rows})
    _count(rows, _written(rows, updated, SyncStatus.PENDING), "waiting")


def _write_postponed(rows):
    _update_rows(_pending(), {s.pk: v for _, s, v in rows})  # counted when postponed


WRITERS = {"succeeded": _write_succeeded, "retry": _write_retry, "failed": _write_failed, "skipped": _write_skipped,
           "held": _write_held, "waiting": _write_waiting, "postponed": _write_postponed}


def _count(rows, mine, name):
    for work, sync, _ in rows:
        if sync.pk in mine:
            setattr(work.report, name, getattr(work.report, name) + 1)


def _written(rows, updated, status):
    """The pks a guarded UPDATE changed. Nearly always all of them; when an operator changed a
    sync meanwhile (fewer rows updated), the rows now in `status` are the ones written."""
    pks = [sync.pk for _, sync, _ in rows]
    if updated == len(pks):
        return set(pks)
    return set(OrderSync.objects.filter(pk__in=pks, status=status).values_list("pk", flat=True))


def _update_rows(queryset, values_by_pk, **common):
    """One UPDATE for many rows of `queryset` (its filter is the guard): `common` for every row,
    and each row's own values as a CASE on the primary key. Rows that share a value share one
    WHEN, and a value every row shares is set plainly. Returns how many rows changed."""
    if not values_by_pk:
        return 0
    model = queryset.model
    pks = list(values_by_pk)
    updated = 0
    for start in range(0, len(pks), ROWS_PER_STATEMENT):
        chunk = pks[start:start + ROWS_PER_STATEMENT]
        names = dict.fromkeys(name for pk in chunk for name in values_by_pk[pk])
        assignments = dict(common)
        for name in names:
            rows = [(pk, values_by_pk[pk][name]) for pk in chunk if name in values_by_pk[pk]]
            assignments[name] = _case(model, model._meta.get_field(name), rows, whole=len(rows) == len(chunk))
        updated += queryset.filter(pk__in=chunk).update(**assignments)
    return updated


def _case(model, model_field, rows, *, whole):
    """The value of `model_field` for each (pk, value) of `rows`. Built as SQL text rather than
    one ORM When per row: resolving a few hundred When(pk=...) cost more CPU than the UPDATE."""
    groups = {}
    for pk, value in rows:
        key = str(value) if hasattr(value, "resolve_expression") else (type(value), value) if _hashable(value) else id(value)
        groups.setdefault(key, (value, []))[1].append(pk)
    if whole and len(groups) == 1:
        value = next(iter(groups.values()))[0]
        return _as_expression(value, model_field)
    if any(hasattr(value, "resolve_expression") for value, _ in groups.values()):
        return Case(*[When(pk__in=pks, then=_as_expression(value, model_field)) for value, pks in groups.values()],
                    default=F(model_field.name), output_field=model_field)
    quote = connection.ops.quote_name
    sql, params = ["CASE"], []
    for value, pks in groups.values():
        sql.append(f"WHEN {quote(model._meta.pk.column)} IN ({', '.join(['%s'] * len(pks))}) THEN %s")
        params += pks
        params.append(model_field.get_db_prep_save(value, connection))
    sql.append(f"ELSE {quote(model_field.column)} END")
    case = RawSQL(" ".join(sql), params, output_field=model_field)
    if connection.features.requires_casted_case_in_updates:
        case = Cast(case, output_field=model_field)
    return case


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _as_expression(value, model_field):
    return value if hasattr(value, "resolve_expression") else Value(value, output_field=model_field)


# ------------------------------------------------------------------------ outside the common path

def _record_unexpected(order_pk, owner, syncs, exc, tb, report):
    """An exception dispatch did not anticipate becomes an attempt of every sync it left due:
    the error and traceback on the attempt, the next try on the backoff schedule, failed at the
    maximum. Left as it was, the sync stayed due and was claimed again at once, for ever."""
    error = f"Unexpected error while dispatching the order: {type(exc).__name__}: {exc}"
    try:
        due = due_syncs().filter(order_id=order_pk)
        if syncs is not None:
            due = due.filter(pk__in=[s.pk for s in syncs])
        for sync in due.select_related("binding", "order__account"):
            running = SyncAttempt.objects.filter(sync=sync, outcome=AttemptOutcome.RUNNING, worker=owner).order_by("-pk").first()
            attempt = running or SyncAttempt.objects.create(sync=sync, number=sync.attempts + 1, worker=owner)
            SyncAttempt.objects.filter(pk=attempt.pk).update(outcome=AttemptOutcome.TRANSIENT, duration_ms=0,
                                                             error=excerpt(error, 4000), traceback=excerpt(tb, 8000))
            work = _OrderWork(sync.order, [])
            work.report = report
            work.fail_or_retry(sync, error, permanent=False, counted=True)
            for kind, row_sync, values in work.writes:
                WRITERS[kind]([(work, row_sync, values)])
    except Exception:  # the database itself failing: the claim expires and the order is retried
        log.exception("could not record the unexpected dispatch error of order pk=%s", order_pk)


def _has_observers(hook_name):
    hook = getattr(get_registry().pm.hook, hook_name, None)
    return bool(hook is not None and hook.get_hookimpls())


def _log_failure(sync, attempts, outcome, next_attempt, error):
    binding = sync.binding
    log_failed_delivery(store=sync.order.account.account_name, order=sync.order.order_id,
                        adapter=f"{binding.adapter_key}#{binding.pk} {binding.name}".strip(), action=sync.action,
                        attempt=attempts, outcome=outcome, next_attempt=next_attempt, error=error)
