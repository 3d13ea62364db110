"""The way back for adapters: updates an adapter collects from its ERP (invoice, tracking,
delivery events, cancel) and hands to the hub, which stores them like the ERP API does.

An adapter that can report updates implements the optional method::

    def poll_updates(self, receive) -> int:
        for each update found in the ERP (a file, a queue message, a polled endpoint):
            receipt = receive(InboundUpdate(kind="invoice", order_id="...", body={...VTEX's body...}))
            # receipt.accepted: stored (queued) or already known (duplicate); else rejected, with receipt.error
        return how many updates were handed over

The hub calls it on a schedule, once per enabled binding whose adapter has it.
"""
from dataclasses import dataclass

UPDATE_KINDS = ("invoice", "tracking", "delivery", "cancel")


@dataclass(frozen=True)
class InboundUpdate:
    kind: str
    order_id: str
    body: dict
    invoice_number: str | None = None
    source: str = ""


@dataclass(frozen=True)
class UpdateReceipt:
    accepted: bool
    status: str
    update_id: int | None = None
    error: str = ""   # status: queued|duplicate|rejected
