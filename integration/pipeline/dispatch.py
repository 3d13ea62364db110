"""Dispatch: claim orders with due work, fetch each once, check its VTEX status, call adapters.

The attempt row is saved before the adapter call and completed after; no transaction is held
across an HTTP call. Each order is claimed as a whole (a lease on the Order row), so its sends
and cancels never run at the same time and it is fetched once per batch.
"""
import logging
import time
import traceback
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Min, Q
from django.db.models.functions import Now
from django.utils import timezone

from integration.bounds import Unstorable, clean_json, clean_text, max_length_of, storable_text
from integration.pipeline import breaker
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
from integration.pipeline.start_handling import after_dispatch
from integration.vtex import errors
from integration.pipeline.vtex_access import client_for
from integration.vtex.statuses import READY_FOR_HANDLING

log = logging.getLogger(__name__)
ACTION_ORDER = {RuleAction.SEND: 0, RuleAction.STATUS: 1, RuleAction.CANCEL: 2}
CANCELED_VTEX_STATUSES = {"canceled", "cancel"}
# Statuses an order reaches only after ready-for-handling: waiting for it would wait forever.
PAST_READY_STATUSES = {"start-handling", "handling", "ready-for-invoicing", "invoice", "invoiced"}
ORDER_LEASE = {"owner_field": "claimed_by", "until_field": "claimed_until"}


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


def claim_due_orders(owner, limit, account_id=None):
    syncs = due_syncs().filter(Q(order__claimed_until__isnull=True) | Q(order__claimed_until__lt=Now()))
    # Not a canceled order: run_start_handling never calls it for one, and claiming it anyway
    # took a slot of every batch, forever, once its gating sends were all delivered.
    start_handling = Order.objects.filter(
        _lease_free(), start_handling_state=StartHandlingState.PENDING, start_handling_due_at__lte=Now(),
        canceled=False, account__active=True, account__paused=False,
    )
    if account_id is not None:
        syncs = syncs.filter(order__account_id=account_id)
        start_handling = start_handling.filter(account_id=account_id)
    ids = list(syncs.values("order_id").annotate(due=Min("next_attempt_at")).order_by("due").values_list("order_id", flat=True)[:limit])
    if len(ids) < limit:
        ids += list(start_handling.exclude(pk__in=ids).values_list("pk", flat=True)[: limit - len(ids)])
    if not ids:
        return []
    # One conditional UPDATE: on PostgreSQL a concurrent claimer waits on the row lock and then
    # re-checks the condition; on SQLite the IMMEDIATE transaction serialises the two.
    take_lease(Order.objects.filter(pk__in=ids), owner, settings.SYNC_CLAIM_TTL, **ORDER_LEASE)
    return list(Order.objects.filter(pk__in=ids, claimed_by=owner).values_list("pk", flat=True))


def dispatch_batch(*, owner=None, limit=None, account_id=None, concurrency=None):
    owner = owner or new_owner_id("dispatch")
    limit = limit or settings.DISPATCH_BATCH_SIZE
    concurrency = settings.DISPATCH_CONCURRENCY if concurrency is None else concurrency
    report = DispatchReport()
    order_ids = claim_due_orders(owner, limit, account_id)
    if not order_ids:
        return report
    # The claimed orders and their due syncs in two queries for the batch, not two per order.
    orders = Order.objects.select_related("account").in_bulk(order_ids)
    syncs = defaultdict(list)
    for sync in due_syncs().filter(order_id__in=order_ids).select_related("binding"):
        syncs[sync.order_id].append(sync)

    def work(pk):
        return process_claimed_order(pk, owner, order=orders.get(pk), syncs=syncs.get(pk, []), release=False)

    try:
        if concurrency <= 1 or len(order_ids) == 1:
            reports = [work(pk) for pk in order_ids]
        else:
            reports = _in_threads(work, order_ids, min(concurrency, len(order_ids)))
    finally:
        # One update releases the batch (an order done early stays claimed until then: nothing of
        # it is due, and a new event for it waits at most the rest of the batch).
        release_lease(Order.objects.filter(pk__in=order_ids), owner, **ORDER_LEASE)
    for r in reports:
        report.add(r)
    return report


def dispatch_due(*, budget=None, account_id=None, owner=None, concurrency=None):
    """Dispatch batches until nothing is due or the time budget is spent."""
    budget = settings.DISPATCH_BUDGET if budget is None else budget
    started = time.monotonic()
    total = DispatchReport()
    while time.monotonic() - started < budget:
        report = dispatch_batch(owner=owner, account_id=account_id, concurrency=concurrency)
        if not report.orders:
            break
        total.add(report)
    return total


def _in_threads(func, items, threads):
    """func(item) for every item on `threads` threads; each thread opens one database connection
    for all the items it takes and closes it when the batch is done (not once per order)."""
    todo = deque(enumerate(items))
    results = [None] * len(items)

    def worker():
        try:
            while True:
                try:
                    index, item = todo.popleft()
                except IndexError:
                    return
                results[index] = func(item)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dispatch") as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return results


def process_claimed_order(order_pk, owner, *, order=None, syncs=None, release=True):
    report = DispatchReport(orders=1)
    try:
        _process(order_pk, owner, report, order=order, syncs=syncs)
    except Exception as exc:  # one order's surprise must not take the batch down
        log.exception("dispatch of order pk=%s failed unexpectedly", order_pk)
        _record_unexpected(order_pk, owner, syncs, exc, traceback.format_exc(), report)
    finally:
        if release:
            release_lease(Order.objects.filter(pk=order_pk), owner, **ORDER_LEASE)
    return report


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
            _complete_attempt(attempt, time.monotonic(), AttemptOutcome.TRANSIENT, error=error, tb=tb)
            _fail_or_retry(sync, error, permanent=False, report=report, counted=True)
    except Exception:  # the database itself failing: the claim expires and the order is retried
        log.exception("could not record the unexpected dispatch error of order pk=%s", order_pk)


def _process(order_pk, owner, report, *, order=None, syncs=None):
    if order is None:
        order = Order.objects.select_related("account").get(pk=order_pk)
    if syncs is None:
        syncs = list(due_syncs().filter(order=order).select_related("binding"))
    account = order.account
    installed = get_registry().adapters
    syncs = [s for s in syncs if s.binding.adapter_key in installed]
    for sync in syncs:
        sync.order = order  # the order (and its store) in memory: a failure's log line costs no query
    syncs.sort(key=lambda s: (ACTION_ORDER.get(s.action, 9), s.pk))
    client = client_for(account)
    if syncs:
        try:
            raw = client.get_order(order.order_id)
        except errors.RateLimited as exc:
            _postpone(syncs, exc.retry_after, f"VTEX rate limit on get order: {exc}")
            report.postponed += len(syncs)
            return
        except errors.NotFound as exc:
            for sync in syncs:
                _fail_or_retry(sync, f"VTEX does not know this order: {exc}", permanent=True, report=report)
            return
        except errors.VtexError as exc:
            for sync in syncs:
                _fail_or_retry(sync, f"Could not fetch the order from VTEX: {exc}", permanent=False, report=report)
            return
        status = str(raw.get("status") or "") if isinstance(raw, dict) else ""
        try:  # the snapshot and status are stored: VTEX's answer must fit the columns first
            clean_json(raw, field="The order JSON")
            clean_text(status, field="The order status", max_length=max_length_of(Order, "vtex_status"))
        except Unstorable as exc:
            for sync in syncs:
                _fail_or_retry(sync, f"VTEX's answer to get order cannot be stored: {exc}", permanent=False, report=report)
            return
        canceled = order.canceled or status in CANCELED_VTEX_STATUSES
        Order.objects.filter(pk=order.pk).update(snapshot=raw, snapshot_at=Now(), vtex_status=status, canceled=canceled)
        order.snapshot, order.vtex_status, order.canceled = raw, status, canceled
        try:
            parsed = parse_order(raw)
        except InvalidOrder as exc:
            for sync in syncs:
                _fail_or_retry(sync, f"The order JSON cannot be used: {exc}", permanent=True, report=report)
            return
        # Before any adapter and before start-handling: is this order the store's to fulfil?
        outside = account.outside_scope_reason(parsed.item_seller_ids())
        group = parsed.order_group if len(parsed.order_group) <= 64 else ""  # an id no VTEX order has: not grouped
        if outside != order.outside_scope_reason or group != order.order_group:
            Order.objects.filter(pk=order.pk).update(outside_scope_reason=outside, order_group=group)
            order.outside_scope_reason, order.order_group = outside, group
        if outside:
            for sync in syncs:
                _skip(sync, outside, report)
            return
        for sync in syncs:
            _run_sync(sync, order, parsed, raw, owner, report)
    outcome = after_dispatch(order, client, syncs_ran=bool(syncs))
    if outcome:
        report.start_handling[outcome] = report.start_handling.get(outcome, 0) + 1


def _run_sync(sync, order, parsed, raw, owner, report):
    sync.order = order
    if sync.binding.account_id == order.account_id:
        sync.binding.account = order.account  # build_adapter reads the store's name: no query for it
    if sync.action == RuleAction.SEND:
        if order.canceled:
            return _skip(sync, "The order is canceled in VTEX; it was not sent.", report)
        passed_ready = order.start_handling_state in (StartHandlingState.DONE, StartHandlingState.CONFLICT)
        if order.vtex_status != READY_FOR_HANDLING and not passed_ready:
            if sync.wait_for_ready and order.vtex_status not in PAST_READY_STATUSES:
                return _wait_for_ready(sync, order.vtex_status, report)
            return _hold(sync, f"VTEX says the order is '{order.vtex_status}', not ready-for-handling; a send waits for the operator.", report)
    elif sync.action == RuleAction.CANCEL:
        sent = OrderSync.objects.filter(order=order, binding=sync.binding, action=RuleAction.SEND, status__in=(SyncStatus.SUCCEEDED, SyncStatus.DELIVERED_BY_HAND))
        if not sent.exists():
            return _skip(sync, "The order was never delivered to this adapter; nothing to cancel.", report)
    wait = breaker.seconds_to_wait(sync.binding)
    if wait:
        _postpone([sync], wait, breaker.POSTPONED)
        report.postponed += 1
        return None
    try:
        adapter = sync.binding.build_adapter()
    except Exception as exc:
        return _fail_or_retry(sync, f"The adapter could not be set up: {redact(exc)}", permanent=False, report=report)
    attempt = SyncAttempt.objects.create(sync=sync, number=sync.attempts + 1, worker=owner)
    started = time.monotonic()
    try:
        return _call_adapter(adapter, sync, attempt, started, parsed, raw, report)
    finally:
        adapter.close()


def _call_adapter(adapter, sync, attempt, started, parsed, raw, report):
    try:
        delivery = adapter.perform(sync.action, parsed, raw, sync.idempotency_key, state=sync.state)
    except AdapterError as exc:
        _complete_attempt(attempt, started, AttemptOutcome.PERMANENT if exc.permanent else AttemptOutcome.TRANSIENT,
                          error=str(exc), request=exc.request_excerpt, response=exc.response_excerpt)
        if not exc.permanent:
            breaker.record_failure(sync.binding)
        return _fail_or_retry(sync, str(exc), permanent=exc.permanent, report=report, counted=True)
    except Exception as exc:  # any other exception counts as transient, with its traceback
        _complete_attempt(attempt, started, AttemptOutcome.TRANSIENT, error=f"{type(exc).__name__}: {exc}", tb=traceback.format_exc())
        breaker.record_failure(sync.binding)
        return _fail_or_retry(sync, f"{type(exc).__name__}: {exc}", permanent=False, report=report, counted=True)
    breaker.record_success(sync.binding)
    delivery_reference = storable_text(str(getattr(delivery, "reference", "") or ""))[:200]
    _complete_attempt(attempt, started, AttemptOutcome.SUCCEEDED, request=getattr(delivery, "request_excerpt", ""),
                      response=getattr(delivery, "response_excerpt", "") or getattr(delivery, "detail", ""))
    updated = OrderSync.objects.filter(pk=sync.pk, status=SyncStatus.PENDING).update(
        status=SyncStatus.SUCCEEDED, attempts=F("attempts") + 1, finished_at=Now(), last_error="", hold_reason="",
        erp_reference=delivery_reference, next_attempt_at=None)
    if updated:
        report.succeeded += 1
        if _has_observers("sync_succeeded"):
            # The row as just written, from memory: re-reading it cost a query per delivery.
            sync.status, sync.attempts, sync.finished_at = SyncStatus.SUCCEEDED, sync.attempts + 1, timezone.now()
            sync.last_error = sync.hold_reason = ""
            sync.erp_reference, sync.next_attempt_at = delivery_reference, None
            notify("sync_succeeded", sync=SyncInfo.of(sync))


def _has_observers(hook_name):
    hook = getattr(get_registry().pm.hook, hook_name, None)
    return bool(hook is not None and hook.get_hookimpls())


def _complete_attempt(attempt, started, outcome, *, error="", tb="", request="", response=""):
    SyncAttempt.objects.filter(pk=attempt.pk).update(
        outcome=outcome, duration_ms=int((time.monotonic() - started) * 1000), error=excerpt(error, 4000),
        traceback=excerpt(tb, 8000), request_excerpt=excerpt(request, 4000), response_excerpt=excerpt(response, 4000))


def _fail_or_retry(sync, error, *, permanent, report, counted=False):
    """Record a failed attempt: retry on the backoff schedule, or fail for the operator."""
    error = excerpt(error, 4000)  # redacted, bounded, storable
    if not counted:
        SyncAttempt.objects.create(sync=sync, number=sync.attempts + 1, duration_ms=0, error=excerpt(error, 4000),
                                   outcome=AttemptOutcome.PERMANENT if permanent else AttemptOutcome.TRANSIENT)
    attempts = sync.attempts + 1
    pending = OrderSync.objects.filter(pk=sync.pk, status=SyncStatus.PENDING)
    if permanent or attempts >= settings.SYNC_MAX_ATTEMPTS:
        why = error if permanent else f"{error} (gave up after {attempts} attempts)"
        if pending.update(status=SyncStatus.FAILED, attempts=attempts, last_error=why, finished_at=Now(), next_attempt_at=None):
            report.failed += 1
            _log_failure(sync, attempts, "permanent" if permanent else "failed", None, error)
            row = OrderSync.objects.select_related("order__account", "binding").get(pk=sync.pk)
            notify("sync_failed", sync=SyncInfo.of(row), error=why)
        return
    wait = delay_after(attempts)
    # updated_at too (update() skips auto_now): the wait is then measured from this attempt.
    if pending.update(attempts=attempts, last_error=error, next_attempt_at=Now() + timedelta(seconds=wait), updated_at=Now()):
        report.retrying += 1
        _log_failure(sync, attempts, "transient", timezone.now() + timedelta(seconds=wait), error)


def _log_failure(sync, attempts, outcome, next_attempt, error):
    binding = sync.binding
    log_failed_delivery(store=sync.order.account.account_name, order=sync.order.order_id,
                        adapter=f"{binding.adapter_key}#{binding.pk} {binding.name}".strip(), action=sync.action,
                        attempt=attempts, outcome=outcome, next_attempt=next_attempt, error=error)


def _skip(sync, reason, report):
    SyncAttempt.objects.create(sync=sync, number=sync.attempts + 1, duration_ms=0, outcome=AttemptOutcome.SKIPPED, error=reason)
    if OrderSync.objects.filter(pk=sync.pk, status=SyncStatus.PENDING).update(status=SyncStatus.SKIPPED, hold_reason=reason, finished_at=Now(), next_attempt_at=None):
        report.skipped += 1


def _hold(sync, reason, report):
    SyncAttempt.objects.create(sync=sync, number=sync.attempts + 1, duration_ms=0, outcome=AttemptOutcome.HELD, error=reason)
    if OrderSync.objects.filter(pk=sync.pk, status=SyncStatus.PENDING).update(status=SyncStatus.HELD, hold_reason=reason, next_attempt_at=None):
        report.held += 1


def _wait_for_ready(sync, status, report):
    """A "send once ready-for-handling" sync while VTEX says another status: stay pending and read
    the order again on READY_WAIT_SCHEDULE (no event needed), until READY_WAIT_MAX_CHECKS checks;
    then hold it for the operator. No attempt row per check: the sync shows the count and the next
    check, and the adapter's attempt count stays for adapter calls."""
    checks = sync.ready_checks + 1
    if checks > settings.READY_WAIT_MAX_CHECKS:
        return _hold(sync, f"Waited for VTEX to say ready-for-handling through {checks - 1} checks; VTEX still says "
                           f"'{status}'. Retry to wait again, or resolve it.", report)
    schedule = settings.READY_WAIT_SCHEDULE
    wait = schedule[min(checks, len(schedule)) - 1]
    reason = (f"Waiting for VTEX to say ready-for-handling (it says '{status}'): check {checks} of at most "
              f"{settings.READY_WAIT_MAX_CHECKS}, the next in {wait} s.")
    if OrderSync.objects.filter(pk=sync.pk, status=SyncStatus.PENDING).update(
            ready_checks=checks, hold_reason=reason, next_attempt_at=Now() + timedelta(seconds=wait)):
        report.waiting += 1


def _postpone(syncs, seconds, reason):
    OrderSync.objects.filter(pk__in=[s.pk for s in syncs], status=SyncStatus.PENDING).update(
        next_attempt_at=Now() + timedelta(seconds=seconds), last_error=redact(reason))
