"""VTEX's request bodies for the way back, as pydantic models: one schema for the inbound API
(django-ninja validates with it and draws the OpenAPI document from it), the adapters' updates
and the operator's invoice form.

Field names, required fields and types follow VTEX's Orders API: invoice notification, send
tracking number, update tracking status, cancel order. Where VTEX only describes a rule in
prose the hub checks it: money in integer cents greater than 0, dates in ISO 8601. Unknown fields
are refused with their name (a typo must not silently drop data VTEX expects). Strings are
bounded and may not contain NUL (PostgreSQL refuses it).
"""
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

MAX_BODY_BYTES = 512 * 1024  # an embedded XML invoice is the largest thing VTEX takes here
MAX_ITEMS = 1000
MAX_EVENTS = 500


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


def _iso_8601(value: str) -> str:
    """A date, or a date and time, in ISO 8601 (VTEX's examples: '2024-01-31T18:25:43-05:00',
    '2022-02-08T13:16:13.4617653+00:00', '2022-10-01 21:15', '2015-06-23'). Kept as written."""
    text = value.strip()
    candidate = text.replace("Z", "+00:00") if text.endswith("Z") else text
    # VTEX writes 7 fractional digits (.NET ticks); Python reads at most 6.
    if "." in candidate:
        head, _, tail = candidate.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        if digits > 6:
            candidate = head + "." + tail[:6] + tail[digits:]
    try:
        if len(candidate) == 10:
            date.fromisoformat(candidate)
        else:
            datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError("must be a date in ISO 8601, e.g. 2024-01-31T18:25:43-05:00") from None
    return value


def _positive_cents(value):
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError("must be an amount in cents: a whole number without separators, e.g. 2499 for 24.99")
        number = int(value)
    else:
        number = value
    if number <= 0:
        raise ValueError("must be greater than 0 (cents)")
    return str(number)  # VTEX's spec types it as a string of cents: sent as one, whichever was given


Text = Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_nul)]
LongText = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_no_nul)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_no_nul)]
IsoDate = Annotated[str, StringConstraints(min_length=8, max_length=40), AfterValidator(_no_nul), AfterValidator(_iso_8601)]
# VTEX's spec types invoiceValue as a string of cents; integers are what ERPs send. Both are
# accepted; VTEX gets the string.
Cents = Annotated[StrictInt | Annotated[str, StringConstraints(max_length=18)], AfterValidator(_positive_cents)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class InvoiceItem(_Body):
    id: Id = Field(description="The SKU id.")
    price: StrictInt = Field(ge=0, description="Unit price in cents.")
    quantity: StrictInt = Field(ge=1, le=1_000_000)
    description: Text | None = None


class InvoiceBody(_Body):
    """POST /api/oms/pvt/orders/{orderId}/invoice."""

    type: Literal["Output", "Input"] = Field(description="Output for a sale, Input for returned items.")
    issuanceDate: IsoDate
    invoiceNumber: Id
    invoiceValue: Cents = Field(description="Total in cents, greater than 0, e.g. 2499 for 24.99.")
    items: list[InvoiceItem] = Field(min_length=1, max_length=MAX_ITEMS)
    invoiceKey: LongText | None = None
    invoiceUrl: Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)] | None = None
    embeddedInvoice: Annotated[str, StringConstraints(max_length=MAX_BODY_BYTES), AfterValidator(_no_nul)] | None = None
    courier: Text | None = None
    trackingNumber: Text | None = None
    trackingUrl: Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)] | None = None
    dispatchedDate: IsoDate | None = None


class TrackingBody(_Body):
    """PATCH /api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}: the tracking number."""

    trackingNumber: Text
    trackingUrl: Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)] | None
    courier: Text | None
    dispatchedDate: IsoDate | None


class TrackingEvent(_Body):
    # VTEX's spec requires all four, as strings (an event without them would be VTEX's 400, later).
    city: Text
    state: Text
    description: Text
    date: IsoDate


class DeliveryBody(_Body):
    """PUT /api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}/tracking: delivery events."""

    isDelivered: StrictBool
    deliveredDate: IsoDate | None
    events: list[TrackingEvent] = Field(max_length=MAX_EVENTS)


class CancelBody(_Body):
    """POST /api/oms/pvt/orders/{orderId}/cancel."""

    reason: Text | None = None


MODELS = {"invoice": InvoiceBody, "tracking": TrackingBody, "delivery": DeliveryBody, "cancel": CancelBody}


class BodyInvalid(ValueError):
    """The body is not VTEX's: `field` is the JSON path of the first bad field ('' for the whole body)."""

    def __init__(self, field, message, errors=()):
        self.field, self.message, self.errors = field, message, list(errors)
        super().__init__(f"{field}: {message}" if field else message)


def field_path(loc):
    """('items', 0, 'price') -> 'items[0].price'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def describe_errors(errors):
    """pydantic's errors as [{'field', 'message'}], first the one to show."""
    out = []
    for error in errors:
        loc = [p for p in error.get("loc", ()) if p != "body"]
        # pydantic names the branch of a union it tried ('int', 'str', 'function-after[...]'): noise here.
        loc = [p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("int", "str")))]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "is not a field of VTEX's body"
        elif error.get("type") == "missing":
            message = "is required"
        out.append({"field": field_path(loc), "message": message})
    return out


def validate_body(kind, raw):
    """The body as VTEX takes it (unset optional fields left out), or BodyInvalid."""
    model = MODELS[kind]
    if not isinstance(raw, dict):
        raise BodyInvalid("", "The body must be a JSON object.")
    try:
        parsed = TypeAdapter(model).validate_python(raw)
    except PydanticValidationError as exc:
        described = describe_errors(exc.errors(include_url=False, include_context=False, include_input=False))
        first = described[0] if described else {"field": "", "message": "invalid"}
        raise BodyInvalid(first["field"], first["message"], described) from None
    return _drop_nulls_vtex_refuses(kind, parsed.model_dump(mode="json", exclude_unset=True))


# Optional fields that VTEX's spec does not let be null: a null from the ERP means "not given" and
# is left out of the body sent (the spec's nullable fields, such as invoiceUrl, keep their null).
NOT_NULLABLE = {"invoice": ("courier",), "cancel": ("reason",)}


def _drop_nulls_vtex_refuses(kind, body):
    for name in NOT_NULLABLE.get(kind, ()):
        if name in body and body[name] is None:
            del body[name]
    if kind == "invoice":  # an item's description is not nullable either
        for item in body["items"]:
            if "description" in item and item["description"] is None:
                del item["description"]
    return body
