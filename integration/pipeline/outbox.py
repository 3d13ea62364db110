"""The outbox sender: updates accepted from the ERP (invoice, tracking, delivery events, cancel)
go to VTEX with the pipeline's promises.

- Claimed by a conditional update (queued -> sending): two workers never send one update.
- The attempt row is written before the call to VTEX and completed after it; no transaction is
  held across the call. A worker that dies mid-call leaves `sending` with an expired claim: the
  update is queued again and sent again, which VTEX's overwrite semantics (same invoiceNumber,
  same tracking) make harmless.
- In order per order: no invoice before start-handling is done (held, and says so), no tracking
  or delivery events before their invoice (held), no cancel once the order is invoiced (failed,
  with the reason). A held update is released as soon as what it waits for has happened.
- Every call goes through the VTEX client: rate caps per route, 429/503 pause the route for
  every worker. Transient failures retry on the backoff schedule; VTEX's 4xx fail the update
  with VTEX's message, for the operator.
"""
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from integration.models import (
    AttemptOutcome, Order, StartHandlingState, UpdateAttempt, UpdateKind, UpdateStatus, VtexUpdate, WaitingFor,
)
from integration.pipeline.backoff import delay_after
from integration.pipeline.failure_log import log_failed_delivery
from integration.pipeline.leases import new_owner_id
from integration.pipeline.update_intake import CANCELED_VTEX_STATUSES, INVOICED_STATUSES, order_is_invoiced
from integration.pipeline.vtex_access import client_for
from integration.redaction import excerpt, redact
from integration.vtex import errors

log = logging.getLogger(__name__)

KIND_ORDER = {UpdateKind.INVOICE: 0, UpdateKind.TRACKING: 1, UpdateKind.DELIVERY: 2, UpdateKind.CANCEL: 3}
START_HANDLING_PASSED = (StartHandlingState.DONE, StartHandlingState.CONFLICT, StartHandlingState.SKIPPED)
HANDLED_STATUSES = frozenset({"start-handling", "handling", "invoice", "invoiced"})
DELIVERED = (UpdateStatus.SENT, UpdateStatus.RESOLVED)


@dataclass
class OutboxReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    held: int = 0
    postponed: int = 0
    released: int = 0
    recovered: int = 0

    def add(self, other):
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def line(self):
        return (f"updates to VTEX: {self.sent} sent, {self.retrying} to retry, {self.failed} failed, {self.held} held, "
                f"{self.postponed} postponed, {self.released} released from hold, {self.recovered} recovered")


def due_updates(account_id=None):
    qs = VtexUpdate.objects.filter(status=UpdateStatus.QUEUED, next_attempt_at__lte=Now(), account__active=True, account__paused=False)
    return qs.filter(account_id=account_id) if account_id is not None else qs


def release_waiting(account_id=None):
    """Held updates whose wait is over (start-handling done, their invoice sent) are queued again."""
    held = VtexUpdate.objects.filter(status=UpdateStatus.HELD)
    if account_id is not None:
        held = held.filter(account_id=account_id)
    again = {"status": UpdateStatus.QUEUED, "waiting_for": WaitingFor.NOTHING, "hold_reason": "", "next_attempt_at": Now()}
    released = held.filter(waiting_for=WaitingFor.START_HANDLING).filter(
        Q(order__start_handling_state__in=START_HANDLING_PASSED) | Q(order__vtex_status__in=HANDLED_STATUSES)).update(**again)
    invoice_sent = VtexUpdate.objects.filter(order=OuterRef("order"), kind=UpdateKind.INVOICE,
                                             invoice_number=OuterRef("invoice_number"), status__in=DELIVERED)
    released += held.filter(waiting_for=WaitingFor.INVOICE).filter(Exists(invoice_sent)).update(**again)
    return released


def recover_interrupted():
    """`sending` rows whose worker died (claim expired): queue them again, close their attempts."""
    stale = VtexUpdate.objects.filter(status=UpdateStatus.SENDING, claimed_until__lt=Now())
    ids = list(stale.values_list("pk", flat=True)[:500])
    if not ids:
        return 0
    UpdateAttempt.objects.filter(update_id__in=ids, outcome=AttemptOutcome.RUNNING).update(
        outcome=AttemptOutcome.TRANSIENT, error="The worker stopped during this call and never recorded VTEX's answer; "
        "the update is sent again (VTEX overwrites an update of the same invoice).")
    return VtexUpdate.objects.filter(pk__in=ids, status=UpdateStatus.SENDING, claimed_until__lt=Now()).update(
        status=UpdateStatus.QUEUED, claimed_by="", claimed_until=None, next_attempt_at=Now())


def claim_due(owner, limit, account_id=None):
    ids = list(due_updates(account_id).order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit])
    if not ids:
        return []
    # The conditional UPDATE is the guard: of two workers that read the same ids, each row goes to
    # the one whose update found it still queued (PostgreSQL re-checks after the row lock; SQLite
    # serialises the two writes).
    VtexUpdate.objects.filter(pk__in=ids, status=UpdateStatus.QUEUED).update(
        status=UpdateStatus.SENDING, claimed_by=owner, claimed_until=Now() + timedelta(seconds=settings.SYNC_CLAIM_TTL))
    claimed = list(VtexUpdate.objects.filter(pk__in=ids, status=UpdateStatus.SENDING, claimed_by=owner)
                   .select_related("account", "order"))
    claimed.sort(key=lambda u: (u.order_id, KIND_ORDER.get(u.kind, 9), u.generation, u.pk))
    return claimed


def send_batch(*, owner=None, limit=None, account_id=None):
    owner = owner or new_owner_id("outbox")
    report = OutboxReport()
    claimed = claim_due(owner, limit or settings.DISPATCH_BATCH_SIZE, account_id)
    report.claimed = len(claimed)
    clients = {}
    for update in claimed:
        client = clients.get(update.account_id)
        if client is None:
            client = clients[update.account_id] = client_for(update.account)
        try:
            send_one(update, client, owner, report)
        except Exception:  # one update's surprise must not take the batch down; its claim expires
            log.exception("sending update pk=%s failed unexpectedly", update.pk)
    return report


def send_due(*, budget=None, account_id=None, owner=None):
    """Release what waited, recover what a dead worker left, then send until nothing is due."""
    budget = settings.DISPATCH_BUDGET if budget is None else budget
    total = OutboxReport(recovered=recover_interrupted(), released=release_waiting(account_id))
    started = time.monotonic()
    while time.monotonic() - started < budget:
        report = send_batch(owner=owner, account_id=account_id)
        if not report.claimed:
            break
        total.add(report)
        if report.sent:
            total.released += release_waiting(account_id)  # tracking that waited for an invoice just sent
    return total


# --- one update ---------------------------------------------------------------------------------
def _mine(update, owner):
    return VtexUpdate.objects.filter(pk=update.pk, status=UpdateStatus.SENDING, claimed_by=owner)


def _why_not_yet(update, order):
    """(waiting_for, reason) when the update must wait, ("refuse", reason) when it never can, else None."""
    if update.kind == UpdateKind.INVOICE:
        if order.start_handling_state in START_HANDLING_PASSED or order.vtex_status in HANDLED_STATUSES:
            return None
        if order.canceled or order.vtex_status in CANCELED_VTEX_STATUSES:
            return "refuse", "The order is canceled in VTEX; an invoice for it is not sent."
        if order.start_handling_state == StartHandlingState.ABANDONED:
            return WaitingFor.START_HANDLING, (
                "Held until start-handling is done, and the hub will not call it by itself: a gating sync of the "
                "order was abandoned. “Start handling anyway” on the order page calls it; the invoice follows.")
        return WaitingFor.START_HANDLING, (
            f"Held until start-handling is done: VTEX takes an invoice only for an order in handling "
            f"(start-handling is now '{order.get_start_handling_state_display()}'). It is sent as soon as it is done.")
    if update.kind in (UpdateKind.TRACKING, UpdateKind.DELIVERY):
        sent = VtexUpdate.objects.filter(order=order, kind=UpdateKind.INVOICE, invoice_number=update.invoice_number, status__in=DELIVERED)
        if sent.exists() or _invoice_known_to_vtex(order, update.invoice_number):
            return None
        return WaitingFor.INVOICE, f"Held until the invoice {update.invoice_number} is sent to VTEX: tracking follows its invoice."
    if update.kind == UpdateKind.CANCEL and order_is_invoiced(order):
        return "refuse", "Refused: the order is invoiced, and VTEX does not cancel an invoiced order. Send a return invoice (type Input) instead."
    return None


def _invoice_known_to_vtex(order, number):
    """An invoice another system sent, seen in the order JSON (packageAttachment.packages)."""
    snapshot = Order.objects.filter(pk=order.pk).values_list("snapshot", flat=True).first() or {}
    packages = ((snapshot.get("packageAttachment") or {}).get("packages") or []) if isinstance(snapshot, dict) else []
    return any(isinstance(p, dict) and p.get("invoiceNumber") == number for p in packages)


def send_one(update, client, owner, report):
    order = Order.objects.defer("snapshot").get(pk=update.order_id)
    wait = _why_not_yet(update, order)
    if wait is not None:
        waiting_for, reason = wait
        if waiting_for == "refuse":
            _finish_failed(update, owner, reason, report, record_attempt=True)
        elif _mine(update, owner).update(status=UpdateStatus.HELD, waiting_for=waiting_for, hold_reason=reason,
                                         claimed_by="", claimed_until=None, next_attempt_at=None):
            report.held += 1
        return
    request_text = excerpt(redact(json.dumps(update.body, ensure_ascii=False)), 4000)
    attempt = UpdateAttempt.objects.create(update=update, number=update.attempts + 1, worker=owner, request_excerpt=request_text)
    started = time.monotonic()
    try:
        answer = _call(update, order, client)
    except errors.RateLimited as exc:  # also RoutePaused: not sent, the route waits
        _complete(attempt, started, AttemptOutcome.TRANSIENT, error=str(exc), status=exc.status, response=exc.body)
        if _mine(update, owner).update(status=UpdateStatus.QUEUED, claimed_by="", claimed_until=None, last_error=redact(str(exc)),
                                       next_attempt_at=Now() + timedelta(seconds=exc.retry_after)):
            report.postponed += 1
            _log_failure(update, update.attempts + 1, "transient", exc.retry_after, str(exc))
        return
    except errors.VtexError as exc:
        message = _vtex_message(exc)
        outcome = AttemptOutcome.TRANSIENT if exc.transient else AttemptOutcome.PERMANENT
        _complete(attempt, started, outcome, error=message, status=exc.status, response=exc.body)
        if exc.transient:
            _retry_or_fail(update, owner, message, report)
        else:
            _finish_failed(update, owner, message, report, answer=exc.body)
        return
    response_text = excerpt(json.dumps(answer, ensure_ascii=False) if answer is not None else "", 4000)
    _complete(attempt, started, AttemptOutcome.SUCCEEDED, status=200, response=response_text)
    receipt = str((answer or {}).get("receipt") or "")[:200] if isinstance(answer, dict) else ""
    if _mine(update, owner).update(status=UpdateStatus.SENT, attempts=F("attempts") + 1, sent_at=Now(), last_error="",
                                   hold_reason="", waiting_for="", vtex_receipt=receipt, vtex_answer=response_text,
                                   claimed_by="", claimed_until=None, next_attempt_at=None):
        report.sent += 1
        _apply_effect(update, order)


def _call(update, order, client):
    if update.kind == UpdateKind.INVOICE:
        return client.send_invoice(order.order_id, update.body)
    if update.kind == UpdateKind.TRACKING:
        return client.send_tracking_number(order.order_id, update.invoice_number, update.body)
    if update.kind == UpdateKind.DELIVERY:
        return client.update_tracking_status(order.order_id, update.invoice_number, update.body)
    return client.cancel_order(order.order_id, (update.body or {}).get("reason") or "")


def _apply_effect(update, order):
    """What VTEX now says of the order, without waiting for the feed to tell it."""
    if update.kind == UpdateKind.INVOICE and update.body.get("type") == "Output":
        Order.objects.filter(pk=order.pk).exclude(vtex_status__in=INVOICED_STATUSES).update(vtex_status="invoiced")
    elif update.kind == UpdateKind.CANCEL:
        who = f"{update.get_source_display()}: {update.source_detail}" if update.source_detail else update.get_source_display()
        Order.objects.filter(pk=order.pk).update(canceled=True, canceled_by=who[:200])


def _vtex_message(exc):
    """VTEX's own message when its body has one (error.message), else the client's summary."""
    try:
        data = json.loads(exc.body or "")
        message = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
    except (ValueError, AttributeError):
        message = None
    text = f"{exc} | VTEX says: {message}" if message and message not in str(exc) else str(exc)
    return redact(text)


def _complete(attempt, started, outcome, *, error="", status=None, response=""):
    UpdateAttempt.objects.filter(pk=attempt.pk).update(
        outcome=outcome, duration_ms=int((time.monotonic() - started) * 1000), error=excerpt(redact(error), 4000),
        http_status=status if isinstance(status, int) and 0 < status < 1000 else None, response_excerpt=excerpt(redact(response or ""), 4000))


def _retry_or_fail(update, owner, error, report):
    attempts = update.attempts + 1
    if attempts >= settings.SYNC_MAX_ATTEMPTS:
        return _finish_failed(update, owner, f"{error} (gave up after {attempts} attempts)", report)
    wait = delay_after(attempts)
    if _mine(update, owner).update(status=UpdateStatus.QUEUED, attempts=attempts, last_error=error, claimed_by="", claimed_until=None,
                                   next_attempt_at=Now() + timedelta(seconds=wait)):
        report.retrying += 1
        _log_failure(update, attempts, "transient", wait, error)


def _finish_failed(update, owner, error, report, *, record_attempt=False, answer=""):
    if record_attempt:
        UpdateAttempt.objects.create(update=update, number=update.attempts + 1, worker=owner, duration_ms=0,
                                     outcome=AttemptOutcome.PERMANENT, error=excerpt(error, 4000))
    fields = {"status": UpdateStatus.FAILED, "last_error": excerpt(error, 4000), "claimed_by": "", "claimed_until": None,
              "next_attempt_at": None, "attempts": update.attempts + 1}
    if answer:
        fields["vtex_answer"] = excerpt(redact(answer), 4000)
    if _mine(update, owner).update(**fields):
        report.failed += 1
        _log_failure(update, update.attempts + 1, "failed", None, error)


def _log_failure(update, attempt, outcome, wait, error):
    """`wait`: seconds to the next attempt, None when it failed for the operator."""
    log_failed_delivery(store=update.account.account_name, order=update.order.order_id, adapter="vtex", action=update.kind,
                        attempt=attempt, outcome=outcome, error=error,
                        next_attempt=None if wait is None else timezone.now() + timedelta(seconds=wait))
