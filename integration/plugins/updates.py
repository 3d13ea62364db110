"""The way back (ERP -> hub): what an adapter hands the hub when the ERP sends an invoice, a
tracking update, a delivery event or a cancellation.

An adapter that carries updates back lists `UPDATES` among its `capabilities` and implements
`poll_updates(receive) -> int`. The hub calls it on a schedule for each enabled binding; the
adapter reads what is waiting (a queue, a folder), turns each message into an `InboundUpdate`
(usually with `parse_update_message`) and calls `receive(update)`, which stores the update
durably before it returns an `UpdateReceipt`. Only then may the adapter acknowledge the message
or move the file away: an update is never lost between the ERP and the hub's database.

The hub's inbound body format (one JSON object per message or file)::

    {"kind": "invoice" | "tracking" | "delivery" | "cancel" | "cancel-refusal",
     "orderId": "<VTEX order id>",
     "invoiceNumber": "<number>",          # tracking and delivery only: the invoice they belong to
     "body": {...}}                         # exactly the body of VTEX's call for that kind

Kinds and the VTEX call each becomes: invoice -> POST /api/oms/pvt/orders/{orderId}/invoice;
tracking -> PATCH .../invoice/{invoiceNumber}; delivery -> PUT .../invoice/{invoiceNumber}/tracking;
cancel -> POST .../cancel. A "cancel-refusal" (body `{"reason": "..."}`) answers a marketplace's
cancellation request with no: VTEX's Orders API has no call for that, so the hub makes none; it
records the refusal on the order for the operator, who declines the request in VTEX's admin (or
the ERP sends the invoice, which is how VTEX goes on with an order whose cancellation was requested).
"""
import json
from dataclasses import dataclass, field
from typing import Callable

from integration.plugins.contract import PermanentError

INVOICE, TRACKING, DELIVERY, CANCEL_UPDATE = "invoice", "tracking", "delivery", "cancel"
CANCEL_REFUSAL = "cancel-refusal"  # no VTEX call: recorded on the order for the operator
UPDATE_KINDS = (INVOICE, TRACKING, DELIVERY, CANCEL_UPDATE, CANCEL_REFUSAL)
KINDS_WITH_INVOICE_NUMBER = frozenset({TRACKING, DELIVERY})
MAX_UPDATE_BYTES = 1024 * 1024  # an invoice with its items is a few kB; anything this big is not one
MAX_ID_LENGTH = 200

QUEUED, DUPLICATE, REJECTED, RECORDED = "queued", "duplicate", "rejected", "recorded"


@dataclass(frozen=True)
class InboundUpdate:
    kind: str  # one of UPDATE_KINDS
    order_id: str  # VTEX order id
    body: dict = field(hash=False)  # exactly VTEX's request body for that call
    invoice_number: str | None = None  # path parameter for tracking / delivery
    source: str = ""  # for the operator: "amqp message <message_id>", "sftp file inbound/x.json"


@dataclass(frozen=True)
class UpdateReceipt:
    accepted: bool  # stored durably (or an identical update was already stored)
    status: str  # "queued" | "duplicate" | "rejected" | "recorded" (a cancel-refusal: kept on the order)
    update_id: int | None = None
    error: str = ""  # why rejected (names the field): goes to the dead-letter / rejected/ reason


Receive = Callable[[InboundUpdate], UpdateReceipt]


class MalformedUpdate(PermanentError):
    """A message or file is not in the hub's inbound body format; the message names the field."""


def _text_field(data, name, source):
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MalformedUpdate(f"{source}: field '{name}' is missing")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise MalformedUpdate(f"{source}: field '{name}' is a {_type(value)}, expected text")
    value = value.strip()
    if len(value) > MAX_ID_LENGTH or any(ord(c) < 32 or c in "/\\?#" for c in value):
        raise MalformedUpdate(f"{source}: field '{name}' is not a usable identifier")
    return value


def _type(value):
    return {dict: "JSON object", list: "JSON list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__)


def parse_update_message(data, *, source: str) -> InboundUpdate:
    """Parse one message or file in the hub's inbound body format.

    Raises `MalformedUpdate` (a `PermanentError`) whose message starts with `source` and names
    the field that is wrong; it never raises anything else.
    """
    source = source or "update"
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if len(data) > MAX_UPDATE_BYTES:
            raise MalformedUpdate(f"{source}: {len(data)} bytes, more than the {MAX_UPDATE_BYTES} an update may have")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MalformedUpdate(f"{source}: not UTF-8 text (byte {exc.start})") from None
    elif not isinstance(data, str):
        raise MalformedUpdate(f"{source}: expected text or bytes, got {type(data).__name__}")
    elif len(data) > MAX_UPDATE_BYTES:
        raise MalformedUpdate(f"{source}: more than {MAX_UPDATE_BYTES} characters")
    if "\x00" in data:
        raise MalformedUpdate(f"{source}: contains a NUL character")
    try:
        document = json.loads(data)
    except RecursionError:
        raise MalformedUpdate(f"{source}: JSON nested too deeply") from None
    except ValueError as exc:
        raise MalformedUpdate(f"{source}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise MalformedUpdate(f"{source}: expected a JSON object with kind, orderId and body, got a {_type(document)}")
    kind = document.get("kind")
    if kind is None:
        raise MalformedUpdate(f"{source}: field 'kind' is missing (one of {', '.join(UPDATE_KINDS)})")
    if kind not in UPDATE_KINDS:
        shown = kind if isinstance(kind, str) and len(kind) <= 40 else _type(kind)
        raise MalformedUpdate(f"{source}: field 'kind' is {shown!r}, expected one of {', '.join(UPDATE_KINDS)}")
    order_id = _text_field(document, "orderId", source)
    invoice_number = None
    if kind in KINDS_WITH_INVOICE_NUMBER:
        invoice_number = _text_field(document, "invoiceNumber", source)
    body = document.get("body")
    if body is None and kind in (CANCEL_UPDATE, CANCEL_REFUSAL):
        body = {}  # VTEX's cancel takes an optional reason only; so does a refusal
    if body is None:
        raise MalformedUpdate(f"{source}: field 'body' is missing (the VTEX request body for {kind})")
    if not isinstance(body, dict):
        raise MalformedUpdate(f"{source}: field 'body' is a {_type(body)}, expected a JSON object")
    return InboundUpdate(kind=kind, order_id=order_id, body=body, invoice_number=invoice_number, source=source)
