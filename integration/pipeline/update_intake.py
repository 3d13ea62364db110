"""Accept an update for VTEX (invoice, tracking, delivery events, cancel) into the outbox.

One service for every way an update comes in: the ERP API, an adapter's poll, the operator's
form. The row is stored (committed) before the caller answers; the outbox sender does the rest.

Idempotency, by the key (store, order, kind, invoice number):
- the same body as the current row: a duplicate, nothing changes (the API answers 200);
- another body while the current row was not sent: the body is replaced, the row queued again;
- another body after it was sent (or while it is being sent): a new row, a correction of it.
"""
import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.utils import timezone

from integration.models import (
    FeedEvent, Order, UpdateKind, UpdateSource, UpdateStatus, VtexUpdate,
)
from integration.models.updates import REPLACEABLE, body_hash
from integration.queueing import enqueue
from integration.update_bodies import BodyInvalid, validate_body
from integration.vtex import errors

log = logging.getLogger(__name__)

QUEUED, DUPLICATE, REPLACED, CORRECTION = "queued", "duplicate", "replaced", "correction"
INVOICED_STATUSES = frozenset({"invoice", "invoiced"})
CANCELED_VTEX_STATUSES = frozenset({"cancel", "canceled"})


class UpdateRefused(Exception):
    """The update cannot be accepted; `code` is the HTTP status the API answers with."""

    def __init__(self, message, code=409):
        super().__init__(message)
        self.message, self.code = message, code


class UnknownOrder(UpdateRefused):
    def __init__(self, message):
        super().__init__(message, 404)


class VtexUnavailable(UpdateRefused):
    def __init__(self, message, retry_after=60):
        super().__init__(message, 503)
        self.retry_after = retry_after


@dataclass
class Accepted:
    update: VtexUpdate
    outcome: str  # queued | duplicate | replaced | correction

    @property
    def is_new_work(self):
        return self.outcome != DUPLICATE


def ensure_order(account, order_id, client=None):
    """The hub's Order row; an order it never saw is brought in from VTEX first (sync_order).

    Raises UnknownOrder when VTEX does not know it, VtexUnavailable when VTEX cannot say."""
    order = Order.objects.filter(account=account, order_id=order_id).defer("snapshot").first()
    if order is not None:
        return order
    from integration.pipeline.sync_order import sync_order

    try:
        sync_order(account, order_id, client=client)
    except errors.NotFound:
        raise UnknownOrder(f"VTEX does not know the order '{order_id}' in the store '{account.account_name}'.") from None
    except errors.RateLimited as exc:
        raise VtexUnavailable(f"VTEX is rate-limiting; could not check the order: {exc}", exc.retry_after) from None
    except errors.VtexError as exc:
        raise VtexUnavailable(f"Could not check the order with VTEX: {exc}") from None
    # Routing creates the Order for states its rules know; an order already past them (handling)
    # has no row yet: make it, with the status VTEX just gave.
    state = (FeedEvent.objects.filter(account=account, order_id=order_id).order_by("-received_at", "-id")
             .values_list("state", flat=True).first() or "")
    order, _ = Order.objects.get_or_create(account=account, order_id=order_id, defaults={"vtex_status": state})
    return order


def order_is_invoiced(order):
    if order.vtex_status in INVOICED_STATUSES:
        return True
    return VtexUpdate.objects.filter(order=order, kind=UpdateKind.INVOICE, status__in=(UpdateStatus.SENT, UpdateStatus.RESOLVED),
                                     body__type="Output").exists()


def accept_update(account, order_id, kind, raw_body, *, invoice_number="", source=UpdateSource.API, who="", user=None, client=None):
    """Validate, store and enqueue one update. Returns Accepted; raises BodyInvalid or UpdateRefused."""
    if kind not in UpdateKind.values:
        raise UpdateRefused(f"Unknown kind of update '{kind}'.", 400)
    body = validate_body(kind, raw_body)
    if kind == UpdateKind.INVOICE:
        invoice_number = body["invoiceNumber"]
    elif kind == UpdateKind.CANCEL:
        invoice_number = ""
    elif not invoice_number:
        raise BodyInvalid("invoiceNumber", "is required (in the path) for tracking and delivery updates")
    elif len(invoice_number) > 100 or "\x00" in invoice_number:
        raise BodyInvalid("invoiceNumber", "must be at most 100 characters of text")
    order = ensure_order(account, order_id, client=client)
    if kind == UpdateKind.CANCEL and order_is_invoiced(order):
        raise UpdateRefused(f"The order {order.order_id} is invoiced: VTEX does not cancel an invoiced order. "
                            "Send a return invoice (type Input) instead.")
    accepted = _store(account, order, kind, invoice_number, body, source, who[:200], user)
    if accepted.is_new_work:
        log.info("update accepted store=%s order=%s kind=%s invoice=%s outcome=%s id=%s", account.account_name,
                 order.order_id, kind, invoice_number, accepted.outcome, accepted.update.pk)
        enqueue("integration.tasks.send_updates", account.pk)
    return accepted


def _store(account, order, kind, invoice_number, body, source, who, user):
    digest = body_hash(body)
    key = {"order": order, "kind": kind, "invoice_number": invoice_number}
    for _ in range(5):  # a concurrent writer of the same key: read again and decide again
        current = VtexUpdate.objects.filter(**key).order_by("-generation").first()
        if current is not None and current.body_hash == digest:
            return Accepted(current, DUPLICATE)
        if current is not None and current.status in REPLACEABLE:
            replaced = VtexUpdate.objects.filter(pk=current.pk, status=current.status, body_hash=current.body_hash).update(
                body=body, body_hash=digest, status=UpdateStatus.QUEUED, attempts=0, next_attempt_at=Now(),
                hold_reason="", waiting_for="", last_error="", source=source, source_detail=who, created_by=user,
                resolved_by=None, resolved_at=None, updated_at=Now())
            if replaced:
                current.refresh_from_db()
                return Accepted(current, REPLACED)
            continue
        generation = current.generation + 1 if current is not None else 0
        try:
            with transaction.atomic():
                row = VtexUpdate.objects.create(
                    account=account, generation=generation, body=body, body_hash=digest, next_attempt_at=Now(),
                    correction_of=current, source=source, source_detail=who, created_by=user, **key)
        except IntegrityError:
            continue
        return Accepted(row, CORRECTION if current is not None else QUEUED)
    raise UpdateRefused("The same update is being changed concurrently; send it again.", 409)


MAX_REFUSAL_NOTE = 4000


def refusals_awaiting_decision():
    """Orders whose cancellation request the ERP refused and that are neither canceled nor invoiced
    (as far as the hub knows): VTEX still waits for someone to decline the request in its admin,
    or for the ERP's invoice. Store health counts them and an alert stays open while there are any."""
    return (Order.objects.exclude(cancellation_refusal="").filter(canceled=False)
            .exclude(vtex_status__in=INVOICED_STATUSES | CANCELED_VTEX_STATUSES))


def record_cancellation_refusal(account, order_id, raw_body, *, who=""):
    """The ERP says no to a marketplace's cancellation request. VTEX's Orders API has no call for
    that (only cancel; a seller declines in VTEX's admin, or goes on by invoicing), so nothing is
    sent: the refusal is kept on the order, newest first, for the operator. Returns the order;
    raises BodyInvalid (the body is `{"reason": "..."}` or `{}`), UpdateRefused or VtexUnavailable."""
    body = validate_body(UpdateKind.CANCEL, raw_body)
    order = ensure_order(account, order_id)
    if order.canceled or order.vtex_status in CANCELED_VTEX_STATUSES:
        raise UpdateRefused(f"The order {order.order_id} is canceled already: the refusal comes too late.")
    note = f"{timezone.now():%Y-%m-%d %H:%M} UTC, {who or 'the ERP'}: {body.get('reason') or 'no reason given'}"
    with transaction.atomic():
        current = Order.objects.select_for_update().filter(pk=order.pk).values_list("cancellation_refusal", flat=True).get()
        text = (note + ("\n" + current if current else ""))[:MAX_REFUSAL_NOTE]
        Order.objects.filter(pk=order.pk).update(cancellation_refusal=text)
    log.warning("cancellation request refused by the ERP store=%s order=%s who=%s", account.account_name, order.order_id, who)
    order.cancellation_refusal = text
    return order
