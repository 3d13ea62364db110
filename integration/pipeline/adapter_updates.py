"""Updates adapters carry back from their ERP: the scheduled per-binding poll and `receive`,
which stores each update through the same service as the ERP API."""
import logging
from dataclasses import dataclass, field

from integration.models import AdapterBinding, UpdateSource
from integration.pipeline.update_intake import (
    DUPLICATE, UpdateRefused, VtexUnavailable, accept_update, record_cancellation_refusal,
)
from integration.plugins.contract import UPDATES, TransientError
from integration.plugins.manager import get_registry
from integration.plugins.updates import CANCEL_REFUSAL, RECORDED, UPDATE_KINDS, InboundUpdate, UpdateReceipt
from integration.redaction import redact
from integration.update_bodies import BodyInvalid

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    bindings: int = 0
    updates: int = 0
    errors: list = field(default_factory=list)

    def line(self):
        text = f"polled {self.bindings} bindings for updates to VTEX: {self.updates} handed over"
        return text + (f"; {len(self.errors)} failed: " + "; ".join(self.errors[:5]) if self.errors else "")


def receiver_for(binding):
    """The `receive` callable handed to `adapter.poll_updates` for this binding.

    Returns an UpdateReceipt (queued, duplicate, or rejected with the reason); raises
    TransientError when the hub cannot decide now (VTEX unreachable while it checks an order it
    never saw): the adapter keeps the update for its next poll."""
    account = binding.account
    who = f"binding {binding.name or binding.adapter_key} (#{binding.pk})"

    def receive(update):
        if not isinstance(update, InboundUpdate):
            return UpdateReceipt(False, "rejected", error="receive() takes an InboundUpdate.")
        if update.kind not in UPDATE_KINDS:
            return UpdateReceipt(False, "rejected", error=f"Unknown kind '{update.kind}'; one of {', '.join(UPDATE_KINDS)}.")
        order_id = update.order_id if isinstance(update.order_id, str) else ""
        if not order_id or len(order_id) > 64 or any(c in order_id for c in "/\x00") or not order_id.isprintable():
            return UpdateReceipt(False, "rejected", error="order_id: one VTEX order id, at most 64 printable characters.")
        detail = f"{who}" + (f", {update.source}" if update.source else "")
        try:
            if update.kind == CANCEL_REFUSAL:  # no VTEX call exists for it: kept on the order
                record_cancellation_refusal(account, order_id, update.body, who=str(detail)[:200])
                return UpdateReceipt(True, RECORDED)
            accepted = accept_update(account, order_id, update.kind, update.body, invoice_number=update.invoice_number or "",
                                     source=UpdateSource.ADAPTER, who=str(detail)[:200])
        except BodyInvalid as exc:
            return UpdateReceipt(False, "rejected", error=f"The body is not VTEX's: {exc}")
        except VtexUnavailable as exc:
            # Not a refusal: the hub cannot check the order now. The adapter keeps the update and
            # offers it again at its next poll.
            raise TransientError(exc.message) from None
        except UpdateRefused as exc:
            return UpdateReceipt(False, "rejected", error=exc.message)
        status = "duplicate" if accepted.outcome == DUPLICATE else "queued"
        return UpdateReceipt(True, status, update_id=accepted.update.pk)

    return receive


def pollable_bindings():
    adapters = get_registry().adapters
    keys = [key for key, cls in adapters.items() if cls.supports(UPDATES)]
    return AdapterBinding.objects.filter(enabled=True, adapter_key__in=keys, account__active=True).select_related("account")


def poll_binding(binding):
    adapter = binding.build_adapter()
    try:
        return int(adapter.poll_updates(receiver_for(binding)) or 0)
    finally:
        adapter.close()


def poll_all():
    report = PollReport()
    for binding in pollable_bindings():
        report.bindings += 1
        try:
            report.updates += poll_binding(binding)
        except Exception as exc:  # one adapter's failure must not stop the others' polls
            log.exception("polling binding %s for updates failed", binding.pk)
            report.errors.append(f"{binding}: {redact(f'{type(exc).__name__}: {exc}')}"[:300])
    return report
