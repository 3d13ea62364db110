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
    """One line of `items[]`. `seller` is the id of the seller who sells and fulfils this item
    (`items[].seller`): "1" is the account's own seller; any other id is a seller selling
    through this account (a marketplace set-up)."""

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


PICKUP = "pickup-in-point"
DELIVERY = "delivery"


@dataclass(frozen=True)
class ShippingLine:
    """One line of `shippingData.logisticsInfo[]`: how item `item_index` reaches the customer.

    `delivery_channel` is VTEX's `deliveryChannel` ("delivery" or "pickup-in-point"; "" when VTEX
    does not say). For a pickup, `pickup_point_id` (`pickupPointId`) and `pickup_point_name`
    (`pickupStoreInfo.friendlyName`) name the pickup point, read from the line or, when the line
    leaves them out, from its selected SLA; for a delivery both are "".
    """

    item_index: int
    sla: str = ""
    price: Decimal = Decimal("0.00")
    estimate: str = ""
    delivery_channel: str = ""
    pickup_point_id: str = ""
    pickup_point_name: str = ""

    @property
    def is_pickup(self) -> bool:
        return self.delivery_channel == PICKUP


@dataclass(frozen=True)
class Payment:
    """One payment of an *active* transaction (`paymentData.transactions[].isActive` not false):
    an inactive transaction is a payment attempt that was replaced, so its payments are left out
    and the payments add up to what was really paid."""

    method: str = ""
    group: str = ""
    value: Decimal = Decimal("0.00")
    installments: int = 1


@dataclass(frozen=True)
class GiftCard:
    """One of `paymentData.giftCards[]`: `value` is the amount the gift card paid. The card's
    `redemptionCode` is never read: it is the secret that spends the card."""

    id: str = ""
    name: str = ""
    provider: str = ""
    value: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class Seller:
    """One of the order's `sellers[]`: "1" is the account itself."""

    id: str
    name: str = ""


@dataclass(frozen=True)
class Marketplace:
    """Where the order was sold.

    - `order_id`: `marketplaceOrderId`, the order's id at the marketplace ("" when sold here).
    - `name`: `marketplace.name`, the marketplace account or channel.
    - `affiliate_id`: `affiliateId`, the three-letter code of the affiliate (external marketplace).
    - `origin`: `origin`, VTEX's order flow: "Marketplace", "Fulfillment" or "Chain".
    """

    order_id: str = ""
    name: str = ""
    affiliate_id: str = ""
    origin: str = ""


@dataclass(frozen=True)
class Totals:
    items: Decimal = Decimal("0.00")
    discounts: Decimal = Decimal("0.00")
    shipping: Decimal = Decimal("0.00")
    tax: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class ParsedOrder:
    """A VTEX order as an adapter receives it. Money is `Decimal` with two places; text is "" when
    VTEX leaves a field out; sub-objects VTEX leaves out are None or empty tuples.

    Besides the customer, address, items, shipping, payments and totals:

    - `sellers`: `sellers[]` as `Seller(id, name)`; each `Item.seller` names one of them.
    - `marketplace`: `Marketplace(order_id, name, affiliate_id, origin)`.
    - `order_group`: `orderGroup`, shared by the orders VTEX split one purchase into
      (`v123-01`, `v123-02`: one per seller or per delivery).
    - `sales_channel`: `salesChannel`, the trade policy id.
    - `shipping`: one `ShippingLine` per logistics line, with its delivery channel and pickup point.
    - `payments`: payments of active transactions only (see `Payment`).
    - `gift_cards`: `GiftCard(id, name, provider, value)`, never the redemption code.
    """

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
    sellers: tuple[Seller, ...] = ()
    marketplace: Marketplace = field(default_factory=Marketplace)
    order_group: str = ""
    sales_channel: str = ""
    gift_cards: tuple[GiftCard, ...] = ()

    def item_seller_ids(self) -> frozenset[str]:
        """The ids of the sellers of the order's items (blank ones left out)."""
        return frozenset(item.seller for item in self.items if item.seller)

    def to_dict(self) -> dict:
        """JSON-serialisable: Decimal -> "12.90", datetime -> ISO 8601, tuples -> lists."""
        return _plain(self)


_FIELD_NAMES = {}  # dataclass -> its field names: fields() builds a tuple each call (to_dict ran it ~40 times an order)


def _plain(value):
    names = _FIELD_NAMES.get(type(value))
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES.setdefault(type(value), tuple(f.name for f in fields(value)))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
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

    def boolean(self, obj, key, where, default=False):
        value = obj.get(key)
        if value is None:
            return default
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
            sellers=self.sellers(raw),
            marketplace=self.marketplace(raw),
            order_group=self.text(raw, "orderGroup", ""),
            sales_channel=self.text(raw, "salesChannel", ""),
            gift_cards=self.gift_cards(raw),
        )

    def sellers(self, raw):
        sellers = []
        for index, entry in enumerate(self.array(raw, "sellers", "")):
            w = f"sellers[{index}]."
            data = self.entry(entry, f"sellers[{index}]")
            seller_id = self.text(data, "id", w)
            if not seller_id:
                self.fail(f"seller {index} has no id")
            sellers.append(Seller(id=seller_id, name=self.text(data, "name", w)))
        return tuple(sellers)

    def marketplace(self, raw):
        data = self.obj(raw, "marketplace", "") or {}
        return Marketplace(
            order_id=self.text(raw, "marketplaceOrderId", ""),
            name=self.text(data, "name", "marketplace."),
            affiliate_id=self.text(raw, "affiliateId", ""),
            origin=self.text(raw, "origin", ""),
        )

    def gift_cards(self, raw):
        payment_data = self.obj(raw, "paymentData", "")
        if payment_data is None:
            return ()
        cards = []
        for index, entry in enumerate(self.array(payment_data, "giftCards", "paymentData.")):
            w = f"paymentData.giftCards[{index}]."
            data = self.entry(entry, w[:-1])
            # redemptionCode is deliberately not read: it spends the card.
            cards.append(GiftCard(
                id=self.text(data, "id", w),
                name=self.text(data, "name", w),
                provider=self.text(data, "provider", w),
                value=self.money(data, "value", w),
            ))
        return tuple(cards)

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
            sla = self.text(data, "selectedSla", w)
            channel = self.text(data, "deliveryChannel", w) or self.text(data, "selectedDeliveryChannel", w)
            point_id, point_name = self.pickup_point(data, w)
            if not channel and self.boolean(self.obj(data, "pickupStoreInfo", w) or {}, "isPickupStore", f"{w}pickupStoreInfo."):
                channel = PICKUP  # older orders: no deliveryChannel, but the pickup store says so
            if not (point_id or point_name) and channel == PICKUP:
                selected = self.selected_sla(data, sla, w)
                if selected is not None:
                    data_sla, sw = selected
                    point_id, point_name = self.pickup_point(data_sla, sw)
            if channel != PICKUP:
                # VTEX fills pickupPointId on delivery lines too (the nearest point): not a pickup.
                point_id = point_name = ""
            lines.append(ShippingLine(
                item_index=item_index,
                sla=sla,
                price=self.money(data, "price", w),
                estimate=self.text(data, "shippingEstimate", w),
                delivery_channel=channel,
                pickup_point_id=point_id,
                pickup_point_name=point_name,
            ))
        return tuple(lines)

    def pickup_point(self, data, w):
        info = self.obj(data, "pickupStoreInfo", w) or {}
        return self.text(data, "pickupPointId", w), self.text(info, "friendlyName", f"{w}pickupStoreInfo.")

    def selected_sla(self, data, sla, w):
        for index, entry in enumerate(self.array(data, "slas", w)):
            sw = f"{w}slas[{index}]."
            entry = self.entry(entry, sw[:-1])
            if sla and self.text(entry, "id", sw) == sla:
                return entry, sw
        return None

    def payments(self, raw):
        payment_data = self.obj(raw, "paymentData", "")
        if payment_data is None:
            return ()
        payments = []
        for t_index, transaction in enumerate(self.array(payment_data, "transactions", "paymentData.")):
            tw = f"paymentData.transactions[{t_index}]"
            transaction = self.entry(transaction, tw)
            # An inactive transaction was replaced by another one (a new payment attempt): what it
            # holds was not paid. A transaction without isActive counts as active.
            if not self.boolean(transaction, "isActive", f"{tw}.", default=True):
                continue
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
