"""start-handling, called at most once per order and only after every gating adapter accepted it.

The order's start-handling state advances by conditional updates (pending -> claimed -> done,
conflict or failed), so two workers can never both call it.
"""
import enum
import logging
import time
import traceback
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce, Now

from integration.pipeline.backoff import delay_after
from integration.bounds import storable_text
from integration.redaction import excerpt
from integration.models import DELIVERED_STATUSES, Order, OrderSync, RuleAction, StartHandlingState, SyncStatus
from integration.vtex import errors

log = logging.getLogger(__name__)
QUICK_RETRIES = 2
SWITCHED_OFF = "Not called: this store has start-handling switched off."
DONE_RECORD = "VTEX answered 204: the order moved to start-handling."


class Eligibility(enum.Enum):
    """What `refresh_eligibility` did."""

    UNCHANGED = "unchanged"  # not every gating send delivered, switched off, or already due or done
    DUE = "due"              # became due now
    CLAIMED = "claimed"      # became due now and is claimed for the caller

    @property
    def became_due(self):
        return self is not Eligibility.UNCHANGED


def refresh_eligibility(order, *, claim=False) -> Eligibility:
    """Make start-handling due once every gating send of the order has been delivered.

    With ``claim`` (the dispatcher, which calls it right after) it is made due and claimed in one
    conditional update.
    """
    gating = OrderSync.objects.filter(order=order, action=RuleAction.SEND, binding__gates_start_handling=True)
    statuses = set(gating.values_list("status", flat=True))  # one query, not two
    if not statuses or not statuses <= set(DELIVERED_STATUSES):
        return Eligibility.UNCHANGED
    pending = Order.objects.filter(pk=order.pk, start_handling_state=StartHandlingState.PENDING, start_handling_due_at__isnull=True)
    if not order.account.call_start_handling:
        pending.update(start_handling_state=StartHandlingState.SKIPPED, start_handling_record=SWITCHED_OFF)
        return Eligibility.UNCHANGED
    if claim and pending.filter(canceled=False).update(
            start_handling_due_at=Now(), start_handling_state=StartHandlingState.CLAIMED,
            start_handling_attempts=F("start_handling_attempts") + 1):
        return Eligibility.CLAIMED
    return Eligibility.DUE if pending.update(start_handling_due_at=Now()) else Eligibility.UNCHANGED


def _finish(order, state, record, **extra):
    Order.objects.filter(pk=order.pk, start_handling_state=StartHandlingState.CLAIMED).update(
        start_handling_state=state, start_handling_record=record[:4000], **extra)
    log.info("start-handling store=%s order=%s state=%s %s", order.account.account_name, order.order_id, state, record[:200])


def _reschedule(order, record, seconds, *, count_attempt=True):
    attempts = Order.objects.filter(pk=order.pk).values_list("start_handling_attempts", flat=True).first() or 0
    if count_attempt and attempts >= settings.START_HANDLING_MAX_ATTEMPTS:
        _finish(order, StartHandlingState.FAILED, f"{record}; gave up after {attempts} attempts")
        return
    extra = {} if count_attempt else {"start_handling_attempts": F("start_handling_attempts") - 1}
    _finish(order, StartHandlingState.PENDING, record, start_handling_due_at=Now() + timedelta(seconds=seconds), **extra)


def run_start_handling(order, client, *, claimed=False) -> StartHandlingState | None:
    """Call start-handling for `order` if it is due. Returns the new state, or None if not due.

    ``claimed``: the caller already claimed it (``refresh_eligibility(order, claim=True)``)."""
    if not claimed:
        claimed = Order.objects.filter(
            pk=order.pk, start_handling_state=StartHandlingState.PENDING, start_handling_due_at__lte=Now(), canceled=False,
        ).update(start_handling_state=StartHandlingState.CLAIMED, start_handling_attempts=F("start_handling_attempts") + 1)
    if not claimed:
        return None
    return record_lot([(order, call(order, client))]).get(order.pk)


@dataclass
class CallResult:
    """VTEX's answer to one start-handling call, as the order's row will record it."""
    state: StartHandlingState
    record: str
    reschedule_in: int | None = None  # pending again: due in that many seconds (None: on the backoff schedule)
    count_attempt: bool = True
    vtex_status: str | None = None  # re-read after a 409


def claim_for_lot(orders, *, ran_pks, owner):
    """The dispatcher's start-handling step for a lot of claimed orders, in a few statements.

    For the orders whose syncs ran (`ran_pks`): make start-handling due once every gating send is
    delivered (or mark it not called, when the store has it switched off). Then claim, by one
    conditional UPDATE, every order of the lot whose start-handling is due, and return those
    orders: the caller calls VTEX for each (`call`) and records the answers (`record_lot`).
    """
    by_pk = {order.pk: order for order in orders}
    eligible = set()
    if ran_pks:
        statuses = defaultdict(set)
        for order_pk, status in OrderSync.objects.filter(order_id__in=list(ran_pks), action=RuleAction.SEND,
                                                         binding__gates_start_handling=True).values_list("order_id", "status"):
            statuses[order_pk].add(status)
        eligible = {pk for pk, found in statuses.items() if found <= set(DELIVERED_STATUSES)}
    off = [pk for pk in eligible if not by_pk[pk].account.call_start_handling]
    if off:
        Order.objects.filter(pk__in=off, start_handling_state=StartHandlingState.PENDING, start_handling_due_at__isnull=True).update(
            start_handling_state=StartHandlingState.SKIPPED, start_handling_record=SWITCHED_OFF)
    on = list(eligible.difference(off))
    # A marker only this lot's claim writes: the rows it changed are then known by one query.
    marker = f"Calling start-handling (worker {owner}, lot {uuid.uuid4().hex[:8]})."
    claimed = Order.objects.filter(
        Q(pk__in=on, start_handling_due_at__isnull=True) | Q(pk__in=list(by_pk), start_handling_due_at__lte=Now()),
        start_handling_state=StartHandlingState.PENDING, canceled=False,
    ).update(start_handling_state=StartHandlingState.CLAIMED, start_handling_due_at=Coalesce("start_handling_due_at", Now()),
             start_handling_attempts=F("start_handling_attempts") + 1, start_handling_record=marker)
    if claimed < len(on):  # a canceled order: due (as an operator sees it), never called
        Order.objects.filter(pk__in=on, start_handling_state=StartHandlingState.PENDING,
                             start_handling_due_at__isnull=True).update(start_handling_due_at=Now())
    if not claimed:
        return []
    pks = Order.objects.filter(pk__in=list(by_pk), start_handling_state=StartHandlingState.CLAIMED,
                               start_handling_record=marker).values_list("pk", flat=True)
    return [by_pk[pk] for pk in sorted(pks)]


def call(order, client) -> CallResult:
    """Call start-handling for a claimed order and say what to record. HTTP only, no statement:
    the dispatcher runs it in its threads."""
    for quick in range(QUICK_RETRIES + 1):
        try:
            client.start_handling(order.order_id)
        except errors.Conflict as exc:
            return _conflict(order, client, exc)
        except errors.RateLimited as exc:
            return CallResult(StartHandlingState.PENDING, f"VTEX rate limit: {exc}", reschedule_in=exc.retry_after,
                              count_attempt=False)
        except errors.VtexError as exc:
            if exc.transient and quick < QUICK_RETRIES:
                time.sleep(0.3 * (quick + 1))
                continue
            if exc.transient:
                return CallResult(StartHandlingState.PENDING, str(exc))
            return CallResult(StartHandlingState.FAILED, f"{exc}")
        except Exception as exc:  # not anticipated: a recorded attempt on the backoff schedule, never a silent re-claim
            log.exception("start-handling of store=%s order=%s failed unexpectedly", order.account.account_name, order.order_id)
            record = f"Unexpected error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            return CallResult(StartHandlingState.PENDING, excerpt(record, 3800))
        else:
            return CallResult(StartHandlingState.DONE, DONE_RECORD)


def record_lot(results):
    """Record the answers of `call` for (order, CallResult) pairs: the successes in one
    statement, the rest (rare) one by one. Returns {order pk: state}."""
    states, done = {}, []
    for order, result in results:
        if result is None:
            continue
        states[order.pk] = result.state
        if result.state == StartHandlingState.DONE:
            done.append(order)
        elif result.vtex_status is not None:
            Order.objects.filter(pk=order.pk).update(vtex_status=result.vtex_status)
            _finish(order, result.state, result.record)
        elif result.state == StartHandlingState.PENDING:
            if result.reschedule_in is not None:
                _reschedule(order, result.record, result.reschedule_in, count_attempt=result.count_attempt)
            else:
                attempts = Order.objects.get(pk=order.pk).start_handling_attempts
                _reschedule(order, result.record, delay_after(attempts))
        else:
            _finish(order, result.state, result.record)
    if done:
        Order.objects.filter(pk__in=[o.pk for o in done], start_handling_state=StartHandlingState.CLAIMED).update(
            start_handling_state=StartHandlingState.DONE, start_handling_record=DONE_RECORD, start_handling_at=Now())
        for order in done:
            log.info("start-handling store=%s order=%s state=%s %s", order.account.account_name, order.order_id,
                     StartHandlingState.DONE, DONE_RECORD)
    return states


def recover_interrupted():
    """start-handling left CLAIMED by a worker that died before recording VTEX's answer.

    The dispatcher holds the order's claim for as long as it works on the order, so CLAIMED with
    the claim expired (or gone) means nobody will finish it. Make it due again: if the lost call
    took effect, VTEX answers the next one with 409 and the conflict path records that it had
    already taken effect; VTEX itself never moves an order to start-handling twice.
    """
    return Order.objects.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=Now()),
                                start_handling_state=StartHandlingState.CLAIMED).update(
        start_handling_state=StartHandlingState.PENDING, start_handling_due_at=Now(),
        start_handling_record="The worker calling start-handling stopped before VTEX's answer was recorded; calling it again.")


def make_stranded_due(limit=500):
    """Orders whose gating sends were all delivered but whose start-handling never became due.

    The dispatcher records a delivery, then calls refresh_eligibility; a worker that died (or
    lost its database) between the two leaves an order with nothing due that nothing would ever
    look at again. Only unclaimed orders are looked at, so a live worker is never raced.
    """
    gating = OrderSync.objects.filter(order=OuterRef("pk"), action=RuleAction.SEND, binding__gates_start_handling=True)
    stranded = (
        Order.objects.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=Now()),
                             start_handling_state=StartHandlingState.PENDING, start_handling_due_at__isnull=True, canceled=False)
        .filter(Exists(gating)).exclude(Exists(gating.exclude(status__in=DELIVERED_STATUSES)))
        .select_related("account").order_by("pk")[:limit]
    )
    return sum(1 for order in stranded if refresh_eligibility(order).became_due)


def gating_abandoned(order_pks, user):
    """Orders of `order_pks` with an abandoned gating send: start-handling will not happen.

    Start-handling is called only once every gating send is delivered, and an abandoned send
    never will be; left pending, the order would look as if it were still waiting. Only orders
    still waiting (pending, not yet due) change, by one conditional update. Returns how many.
    """
    abandoned = OrderSync.objects.filter(order=OuterRef("pk"), action=RuleAction.SEND,
                                         binding__gates_start_handling=True, status=SyncStatus.ABANDONED)
    name = user.get_username() if user is not None else "an operator"
    record = (f"Will not be called: a gating sync was abandoned by {name}, and start-handling waits for every "
              f"gating adapter to accept the order. “Start handling anyway” calls it regardless.")
    return Order.objects.filter(pk__in=list(order_pks), start_handling_state=StartHandlingState.PENDING,
                                start_handling_due_at__isnull=True).filter(Exists(abandoned)).update(
        start_handling_state=StartHandlingState.ABANDONED, start_handling_record=record,
        start_handling_decided_by=user if user is not None and user.pk else None)


def call_anyway(queryset, user):
    """Start-handling that will not happen (a gating sync abandoned) becomes due now, decided by
    `user`: the operator knows the ERP has the order. Canceled orders, and stores with
    start-handling switched off, are left alone. Returns (orders changed, their stores' pks)."""
    rows = list(queryset.filter(start_handling_state=StartHandlingState.ABANDONED, canceled=False,
                                account__call_start_handling=True).values_list("pk", "account_id"))
    name = user.get_username() if user is not None else "an operator"
    pks, changed = [pk for pk, _ in rows], 0
    for start in range(0, len(pks), 500):  # each UPDATE's IN (...) well under every database's parameter limit
        changed += Order.objects.filter(pk__in=pks[start:start + 500], start_handling_state=StartHandlingState.ABANDONED).update(
            start_handling_state=StartHandlingState.PENDING, start_handling_due_at=Now(), start_handling_attempts=0,
            start_handling_record=f"Called anyway by {name}, although a gating sync was abandoned.",
            start_handling_decided_by=user if user is not None and user.pk else None)
    return changed, sorted({account_id for _, account_id in rows})


def _conflict(order, client, exc):
    """409 OMS003: the order already moved on. Re-read it and say where it is; never retry blindly."""
    vtex_status = None
    try:
        status = vtex_status = storable_text(str(client.get_order(order.order_id).get("status", "?")))[:64]
    except errors.VtexError as read_error:
        status = f"unknown (re-reading the order failed: {read_error})"
    code = exc.code or "409"
    if status in ("start-handling", "handling"):
        note = "start-handling had already taken effect (an earlier call, or another consumer)"
    else:
        note = "the order was not in ready-for-handling"
    return CallResult(StartHandlingState.CONFLICT, f"VTEX answered 409 {code}; VTEX status now '{status}': {note}.",
                      vtex_status=vtex_status)
