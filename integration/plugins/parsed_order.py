"""The VTEX order JSON, parsed once into plain, typed values for adapters.

VTEX sends money as integer cents; adapters get `Decimal` with two places. `parse_order` raises
`InvalidOrder` (a PermanentError) and nothing else for any input it cannot trust: retrying a
malformed order never helps, and an operator must look at it.
"""
import math
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from decimal import Decimal

from integration.plugins.contract import PermanentError

CENT = Decimal("0.01")
MAX_CENTS = 10**13  # 100 billion in currency units: anything larger is corrupt data
MAX_QUANTITY = 10**7
MAX_COUNT = 10**7  # installments, item indexes


class InvalidOrder(PermanentError):
    """The order JSON is missing something an adapter needs, or has values of the wrong kind."""


@dataclass(frozen=True)
class Customer:
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    document: str = ""
    document_type: str = ""
    phone: str = ""
    is_corporate: bool = False
    corporate_name: str = ""


@dataclass(frozen=True)
class Address:
    receiver_name: str = ""
    street: str = ""
    number: str = ""
    complement: str = ""
    neighborhood: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""


@dataclass(frozen=True)
class Item:
    sku: str
    product_id: str = ""
    ref_id: str = ""
    name: str = ""
    quantity: int = 1
    unit_price: Decimal = Decimal("0.00")
    list_price: Decimal = Decimal("0.00")
    selling_price: Decimal = Decimal("0.00")
    total: Decimal = Decimal("0.00")
    seller: str = ""


@dataclass(frozen=True)
class ShippingLine:
    item_index: int
    sla: str = ""
    price: Decimal = Decimal("0.00")
    estimate: str = ""


@dataclass(frozen=True)
class Payment:
    method: str = ""
    group: str = ""
    value: Decimal = Decimal("0.00")
    installments: int = 1


@dataclass(frozen=True)
class Totals:
    items: Decimal = Decimal("0.00")
    discounts: Decimal = Decimal("0.00")
    shipping: Decimal = Decimal("0.00")
    tax: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class ParsedOrder:
    order_id: str
    sequence: str = ""
    status: str = ""
    creation_date: datetime | None = None
    last_change: datetime | None = None
    currency: str = "BRL"
    customer: Customer | None = None
    shipping_address: Address | None = None
    items: tuple[Item, ...] = ()
    shipping: tuple[ShippingLine, ...] = ()
    payments: tuple[Payment, ...] = ()
    totals: Totals = field(default_factory=Totals)
    value: Decimal = Decimal("0.00")

    def to_dict(self) -> dict:
        """JSON-serialisable: Decimal -> "12.90", datetime -> ISO 8601, tuples -> lists."""
        return _plain(self)


def _plain(value):
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Decimal):
        return format(value.quantize(CENT), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def cents_to_decimal(cents) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


class _Parser:
    """Reads one order; every failure becomes InvalidOrder with a message naming the field."""

    def __init__(self, raw):
        self.raw = raw
        self.label = "order"

    def fail(self, message):
        raise InvalidOrder(f"{self.label} {message}")

    # --- scalar readers -----------------------------------------------------------------------
    def text(self, obj, key, where):
        value = obj.get(key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        self.fail(f"has a {type(value).__name__} in {where}{key}, expected text")

    def boolean(self, obj, key, where):
        value = obj.get(key)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        self.fail(f"has a {type(value).__name__} in {where}{key}, expected true or false")

    def integer(self, obj, key, where, *, default, minimum=0, maximum=MAX_COUNT):
        value = obj.get(key)
        if value is None:
            return default
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(f"has a {type(value).__name__} in {where}{key}, expected a whole number")
        if not minimum <= value <= maximum:
            self.fail(f"has {where}{key} = {value}, expected {minimum} to {maximum}")
        return value

    def money(self, obj, key, where, *, allow_negative=False, default=0):
        """Integer cents -> Decimal with two places."""
        value = obj.get(key)
        if value is None:
            value = default
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(f"has a {type(value).__name__} in {where}{key}, expected an amount in integer cents")
        if value < 0 and not allow_negative:
            self.fail(f"has a negative amount in {where}{key}: {value}")
        if abs(value) > MAX_CENTS:
            self.fail(f"has an impossible amount in {where}{key}: {value}")
        return cents_to_decimal(value)

    def date(self, obj, key, where):
        value = obj.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > 64:
            self.fail(f"has a {type(value).__name__} in {where}{key}, expected an ISO 8601 date")
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"has an invalid date in {where}{key}: {value!r}")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)  # VTEX dates carry an offset; assume UTC if not
        return parsed

    def obj(self, parent, key, where):
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(f"has a {type(value).__name__} in {where}{key}, expected an object")
        return value

    def array(self, parent, key, where):
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"has a {type(value).__name__} in {where}{key}, expected a list")
        return value

    def entry(self, value, where):
        if not isinstance(value, dict):
            self.fail(f"has a {type(value).__name__} in {where}, expected an object")
        return value

    # --- the order ----------------------------------------------------------------------------
    def parse(self) -> ParsedOrder:
        raw = self.raw
        if not isinstance(raw, dict):
            raise InvalidOrder(f"order JSON is not an object (got {type(raw).__name__})")
        order_id = raw.get("orderId")
        if order_id is None or (isinstance(order_id, str) and not order_id.strip()):
            raise InvalidOrder("order JSON has no orderId")
        if not isinstance(order_id, str):
            raise InvalidOrder(f"order JSON has a {type(order_id).__name__} as orderId, expected text")
        order_id = order_id.strip()
        if len(order_id) > 200 or any(ord(c) < 32 for c in order_id):
            raise InvalidOrder("order JSON has an unusable orderId")
        self.label = f"order {order_id}"

        store = self.obj(raw, "storePreferencesData", "") or {}
        currency = self.text(store, "currencyCode", "storePreferencesData.") or "BRL"
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            self.fail(f"has an invalid currency code {currency!r}")

        items = self.items(raw)
        return ParsedOrder(
            order_id=order_id,
            sequence=self.text(raw, "sequence", ""),
            status=self.text(raw, "status", ""),
            creation_date=self.date(raw, "creationDate", ""),
            last_change=self.date(raw, "lastChange", ""),
            currency=currency.upper(),
            customer=self.customer(raw),
            shipping_address=self.address(raw),
            items=items,
            shipping=self.shipping(raw, len(items)),
            payments=self.payments(raw),
            totals=self.totals(raw),
            value=self.money(raw, "value", ""),
        )

    def customer(self, raw):
        data = self.obj(raw, "clientProfileData", "")
        if data is None:
            return None
        w = "clientProfileData."
        return Customer(
            email=self.text(data, "email", w),
            first_name=self.text(data, "firstName", w),
            last_name=self.text(data, "lastName", w),
            document=self.text(data, "document", w),
            document_type=self.text(data, "documentType", w),
            phone=self.text(data, "phone", w),
            is_corporate=self.boolean(data, "isCorporate", w),
            corporate_name=self.text(data, "corporateName", w),
        )

    def address(self, raw):
        shipping = self.obj(raw, "shippingData", "")
        if shipping is None:
            return None
        data = self.obj(shipping, "address", "shippingData.")
        if data is None:
            return None
        w = "shippingData.address."
        return Address(
            receiver_name=self.text(data, "receiverName", w),
            street=self.text(data, "street", w),
            number=self.text(data, "number", w),
            complement=self.text(data, "complement", w),
            neighborhood=self.text(data, "neighborhood", w),
            city=self.text(data, "city", w),
            state=self.text(data, "state", w),
            postal_code=self.text(data, "postalCode", w),
            country=self.text(data, "country", w),
        )

    def items(self, raw):
        entries = self.array(raw, "items", "")
        if not entries:
            self.fail("has no items")
        items = []
        for index, entry in enumerate(entries):
            w = f"items[{index}]."
            data = self.entry(entry, f"items[{index}]")
            sku = self.text(data, "id", w)
            if not sku:
                self.fail(f"item {index} has no id (SKU)")
            quantity = self.integer(data, "quantity", w, default=None, minimum=1, maximum=MAX_QUANTITY)
            if quantity is None:
                self.fail(f"item {index} has no quantity")
            unit_price = self.money(data, "price", w)
            list_price = self.money(data, "listPrice", w, default=None) if data.get("listPrice") is not None else unit_price
            selling_price = (
                self.money(data, "sellingPrice", w) if data.get("sellingPrice") is not None else unit_price
            )
            total = self.item_total(data, w)
            if total is None:
                total = (selling_price * quantity).quantize(CENT)
            items.append(Item(
                sku=sku,
                product_id=self.text(data, "productId", w),
                ref_id=self.text(data, "refId", w),
                name=self.text(data, "name", w),
                quantity=quantity,
                unit_price=unit_price,
                list_price=list_price,
                selling_price=selling_price,
                total=total,
                seller=self.text(data, "seller", w),
            ))
        return tuple(items)

    def item_total(self, data, w):
        # The exact line total after discounts; the spec says priceDefinitions, the example priceDefinition.
        for key in ("priceDefinition", "priceDefinitions"):
            definition = self.obj(data, key, w)
            if definition is not None and definition.get("total") is not None:
                return self.money(definition, "total", f"{w}{key}.")
        return None

    def shipping(self, raw, item_count):
        shipping = self.obj(raw, "shippingData", "")
        if shipping is None:
            return ()
        lines = []
        for index, entry in enumerate(self.array(shipping, "logisticsInfo", "shippingData.")):
            w = f"shippingData.logisticsInfo[{index}]."
            data = self.entry(entry, f"shippingData.logisticsInfo[{index}]")
            item_index = self.integer(data, "itemIndex", w, default=index, maximum=max(item_count - 1, 0))
            lines.append(ShippingLine(
                item_index=item_index,
                sla=self.text(data, "selectedSla", w),
                price=self.money(data, "price", w),
                estimate=self.text(data, "shippingEstimate", w),
            ))
        return tuple(lines)

    def payments(self, raw):
        payment_data = self.obj(raw, "paymentData", "")
        if payment_data is None:
            return ()
        payments = []
        for t_index, transaction in enumerate(self.array(payment_data, "transactions", "paymentData.")):
            tw = f"paymentData.transactions[{t_index}]"
            transaction = self.entry(transaction, tw)
            for p_index, entry in enumerate(self.array(transaction, "payments", f"{tw}.")):
                w = f"{tw}.payments[{p_index}]."
                data = self.entry(entry, w[:-1])
                payments.append(Payment(
                    method=self.text(data, "paymentSystemName", w),
                    group=self.text(data, "group", w),
                    value=self.money(data, "value", w),
                    installments=self.integer(data, "installments", w, default=1),
                ))
        return tuple(payments)

    def totals(self, raw):
        found = {}
        names = {"Items": "items", "Discounts": "discounts", "Shipping": "shipping", "Tax": "tax"}
        for index, entry in enumerate(self.array(raw, "totals", "")):
            w = f"totals[{index}]."
            data = self.entry(entry, f"totals[{index}]")
            total_id = data.get("id")
            if not isinstance(total_id, str) or total_id not in names:
                continue  # other totals (e.g. "CustomTax") are not part of the summary
            # VTEX reports discounts as a negative amount.
            found[names[total_id]] = self.money(data, "value", w, allow_negative=total_id == "Discounts")
        return Totals(**found)


def parse_order(raw) -> ParsedOrder:
    """Parse a VTEX order JSON (as returned by Get order). Raises InvalidOrder, and only that."""
    try:
        return _Parser(raw).parse()
    except InvalidOrder:
        raise
    except Exception as exc:  # belt and braces: no other exception type may escape
        order_id = raw.get("orderId") if isinstance(raw, dict) else None
        label = f"order {order_id}" if isinstance(order_id, str) and order_id else "order JSON"
        raise InvalidOrder(f"{label} could not be parsed: {type(exc).__name__}: {exc}") from exc
