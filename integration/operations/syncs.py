"""What an operator can do to a sync or an order: plain functions, called by the admin and by tests.

Each takes a queryset (the admin's selection, or every row matching a changelist filter), changes
rows with conditional updates (a row that changed status meanwhile is left alone), and says what
happened to how many. Times come from the database (`Now()`), never from this host's clock.
"""
import math
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Now

from integration import queueing
from integration.models import (
    DELIVERED_STATUSES, Order, OrderSync, RuleAction, StartHandlingState, SyncStatus,
)
from integration.operations.results import SUCCESS, Result, plural, rows_changed
from integration.pipeline import breaker
from integration.pipeline.start_handling import call_anyway, gating_abandoned, refresh_eligibility
from integration.pipeline.sync_order import sync_order

# What an operator may retry or resolve; succeeded, skipped and resolved syncs are final.
ACTIONABLE = (SyncStatus.FAILED, SyncStatus.HELD, SyncStatus.PENDING)
RETRYABLE_START_HANDLING = (StartHandlingState.FAILED, StartHandlingState.CONFLICT, StartHandlingState.PENDING)
# Keep each UPDATE's IN (...) list well under every database's parameter limit.
CHUNK = 500
# "Retry all matching" writes at most about this many UPDATEs, whatever the number of syncs.
MAX_STAGGER_STEPS = 1000


def _chunks(seq, size=CHUNK):
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _enqueue(account_ids):
    """A dispatch per store, now: never folded into one queued a moment ago, which may already
    have looked for due work and found none."""
    for account_id in sorted(set(account_ids)):
        queueing.enqueue_dispatch(account_id, dedupe=False)


def _actionable_rows(queryset):
    """(pk, store id, order pk) of the syncs an operator may act on, oldest first."""
    return list(
        queryset.filter(status__in=ACTIONABLE).order_by("created_at", "pk")
        .values_list("pk", "order__account_id", "order_id")
    )


def _probe_open_breakers(queryset):
    """A retry is the operator saying the ERP is back: an open circuit breaker would otherwise keep
    the retried syncs waiting (up to BREAKER_OPEN_SECONDS). Its next call goes out now as a probe."""
    bindings = set(queryset.filter(status__in=ACTIONABLE).values_list("binding_id", flat=True).distinct())
    probed = breaker.probe_now(bindings) if bindings else 0
    if not probed:
        return ""
    return (f"The circuit breaker of {plural(probed, 'adapter')} was open: the next call goes out now as a probe; "
            f"if it fails too, the breaker opens again.")


def retry_syncs(queryset):
    """Retry now: failed, held or pending syncs become pending and due now, with a fresh attempt count.

    `last_error` stays until the next attempt replaces it, so the operator still sees why.
    """
    total = queryset.count()
    rows = _actionable_rows(queryset)
    note = _probe_open_breakers(queryset) if rows else ""
    changed = 0
    with transaction.atomic():
        for chunk in _chunks([pk for pk, _, _ in rows]):
            changed += OrderSync.objects.filter(pk__in=chunk, status__in=ACTIONABLE).update(
                status=SyncStatus.PENDING, attempts=0, ready_checks=0, next_attempt_at=Now(), finished_at=None)
    stores = sorted({account_id for _, account_id, _ in rows})
    _enqueue(stores)
    return rows_changed("Retrying now", changed=changed, left_alone=total - changed, stores=stores, note=note)


def retry_matching(queryset, *, per_minute=None):
    """Retry every failed, held or pending sync of `queryset`, released at `per_minute` a minute.

    After an ERP outage hundreds of syncs fail together; retrying them all at once would only
    knock the ERP over again. The k-th sync (oldest first) is due at now + k / per_minute minutes;
    consecutive syncs share a due time in steps, so this takes a bounded number of UPDATEs.
    """
    per_minute = max(1, int(per_minute or settings.RETRY_ALL_PER_MINUTE))
    rows = _actionable_rows(queryset)
    step = max(math.ceil(per_minute / 60), math.ceil(len(rows) / MAX_STAGGER_STEPS), 1)
    changed = 0
    base = None  # the database's "now", read back from the first row written with Now()
    breaker_note = _probe_open_breakers(queryset) if rows else ""  # before the update: the filter may be "failed"
    with transaction.atomic():
        for start in range(0, len(rows), step):
            offset = timedelta(minutes=start / per_minute)
            for chunk in _chunks([pk for pk, _, _ in rows[start:start + step]]):
                due = Now() + offset if base is None else base + offset
                updated = OrderSync.objects.filter(pk__in=chunk, status__in=ACTIONABLE).update(
                    status=SyncStatus.PENDING, attempts=0, ready_checks=0, next_attempt_at=due, finished_at=None)
                if updated and base is None:
                    written = (OrderSync.objects.filter(pk__in=chunk, status=SyncStatus.PENDING, attempts=0)
                               .order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first())
                    base = written - offset if written else None
                changed += updated
    stores = sorted({account_id for _, account_id, _ in rows})
    _enqueue(stores)
    minutes = (len(rows) - 1) / per_minute if rows else 0
    note = f"Released at {per_minute} a minute: the last one is due in about {_duration(minutes)}." if len(rows) > 1 else ""
    note = f"{note} {breaker_note}".strip()
    return rows_changed("Retrying all matching", changed=changed, stores=stores, note=note)


def _duration(minutes):
    if minutes < 1:
        return f"{max(1, round(minutes * 60))} seconds"
    if minutes < 120:
        return plural(math.ceil(minutes), "minute")
    return f"{minutes / 60:.1f} hours"


def _resolve(queryset, user, status):
    total = queryset.count()
    rows = _actionable_rows(queryset)
    changed = 0
    user_id = getattr(user, "pk", None)
    with transaction.atomic():
        for chunk in _chunks([pk for pk, _, _ in rows]):
            changed += OrderSync.objects.filter(pk__in=chunk, status__in=ACTIONABLE).update(
                status=status, resolved_by_id=user_id, resolved_at=Now(), finished_at=Now(), next_attempt_at=None)
    return rows, total, changed


def resolve_delivered_by_hand(queryset, user):
    """The operator delivered the order to the ERP themselves: counts as delivered.

    Start-handling becomes due for every order whose gating sends are now all delivered.
    """
    rows, total, changed = _resolve(queryset, user, SyncStatus.DELIVERED_BY_HAND)
    now_due = 0
    for order in Order.objects.filter(pk__in={order_pk for _, _, order_pk in rows}).select_related("account").defer("snapshot"):
        now_due += refresh_eligibility(order).became_due
    stores = sorted({account_id for _, account_id, _ in rows})
    _enqueue(stores)
    note = f"Start-handling is now due for {plural(now_due, 'order')}." if now_due else ""
    return rows_changed("Resolved as delivered by hand", changed=changed, left_alone=total - changed, stores=stores, note=note)


def abandon_syncs(queryset, user):
    """Give up on these syncs. Abandoned is not delivered: an order with an abandoned gating send
    will not get start-handling (a state of its own, decided by `user`) unless called anyway."""
    rows, total, changed = _resolve(queryset, user, SyncStatus.ABANDONED)
    stores = sorted({account_id for _, account_id, _ in rows})
    wont = 0
    for chunk in _chunks(sorted({order_pk for _, _, order_pk in rows})):
        wont += gating_abandoned(chunk, user)
    note = (f"Start-handling will not be called for {plural(wont, 'order')} (a gating sync abandoned); "
            f"“Start handling anyway” on the order calls it regardless.") if wont else ""
    return rows_changed("Resolved as abandoned", changed=changed, left_alone=total - changed, stores=stores, note=note)


def start_handling_eligible(queryset):
    """Orders whose gating sends exist and are all delivered, not canceled, on a store that calls it."""
    gating = OrderSync.objects.filter(order=OuterRef("pk"), action=RuleAction.SEND, binding__gates_start_handling=True)
    return queryset.filter(
        Exists(gating), ~Exists(gating.exclude(status__in=DELIVERED_STATUSES)),
        canceled=False, account__call_start_handling=True,
    )


def retry_start_handling(queryset):
    """Failed, conflicting or pending start-handling becomes due now, with a fresh attempt count.

    Never for an order whose gating sends are not all delivered: start-handling is called only
    after every gating adapter accepted the order.
    """
    total = queryset.count()
    candidates = queryset.filter(start_handling_state__in=RETRYABLE_START_HANDLING)
    candidate_count = candidates.count()
    rows = list(start_handling_eligible(candidates).values_list("pk", "account_id"))
    changed = 0
    with transaction.atomic():
        for chunk in _chunks([pk for pk, _ in rows]):
            changed += Order.objects.filter(pk__in=chunk, start_handling_state__in=RETRYABLE_START_HANDLING).update(
                start_handling_state=StartHandlingState.PENDING, start_handling_due_at=Now(), start_handling_attempts=0)
    stores = sorted({account_id for _, account_id in rows})
    _enqueue(stores)
    waiting = candidate_count - len(rows)
    note = (f"{plural(waiting, 'order')} not retried: canceled, start-handling switched off for the store, "
            f"or not every gating sync delivered yet.") if waiting else ""
    return rows_changed("Start-handling due now", changed=changed, left_alone=total - candidate_count,
                        stores=stores, noun="order", note=note, why_left_alone="already done, claimed or not called")


def start_handling_anyway(queryset, user):
    """Call start-handling for orders where it was not going to happen (a gating sync abandoned):
    due now and enqueued, recorded as decided by `user`."""
    total = queryset.count()
    changed, stores = call_anyway(queryset, user)
    _enqueue(stores)
    return rows_changed("Start-handling due now, called anyway", changed=changed, left_alone=total - changed,
                        stores=stores, noun="order",
                        why_left_alone="not waiting on an abandoned sync, canceled, or start-handling switched off for the store")


def sync_order_now(account, order_id):
    """Bring in an order the hub never saw (or missed): fetch it from VTEX, route it, dispatch
    (`pipeline.sync_order`). `data` holds `new_events` and the hub's `order` (None when no rule acts).

    VTEX errors (`integration.vtex.errors.VtexError`) propagate for the caller to show.
    """
    order_id = order_id.strip()
    stored = sync_order(account, order_id)
    order = Order.objects.filter(account=account, order_id=order_id).defer("snapshot").first()
    if stored.new:
        text = "its current status was stored as a new event and routed"
    else:
        text = "the hub already had its current status; nothing new was stored"
    if order is None:
        text += "; no rule of the store acts on that status, so nothing will be sent."
    elif stored.new:
        text += "; dispatch was asked to run now."
    else:
        text += "."
    return Result(f"Order {order_id}", SUCCESS, text, data={"new_events": stored.new, "order": order})
