"""Order kinds beyond the plain one: how a built order is turned into a marketplace, seller, pickup
or gift-card order (and how a purchase is split into ``-01``/``-02`` of one ``orderGroup``).

Each function changes an order built by ``OrderFactory.build`` in place and keeps its invariants
(``value == sum(totals)``, the active transaction's payments add up to ``value``). The shapes follow
VTEX's Get order schema and its example (``/api/oms/pvt/orders/{orderId}``):

* **marketplace**: an order sold on an external marketplace (an affiliate) and fulfilled by this
  account: ``marketplaceOrderId``, ``affiliateId``, ``marketplace.name``, its own sales channel.
  Its items are sold by seller ``1`` (the account itself); its events are in the Fulfillment domain.
* **seller**: an order this account (a marketplace) took for a third-party seller: id
  ``SLR-<number>-01``, every item sold by that seller (``items[].seller``, ``sellers[]``); its
  events are in the Marketplace domain.
* **split**: one purchase as two orders, ``<n>-01`` and ``<n>-02``, with one ``orderGroup``: by
  default the first sold by the account, the second by a third-party seller (VTEX splits per seller).
* **pickup**: every line is collected at a pickup point (``deliveryChannel: pickup-in-point``,
  ``pickupStoreInfo``, ``pickupPointId``), shipping free, the address the pickup point's.
* **gift_card**: part (or all) of the order is paid with a gift card (``paymentData.giftCards[]`` and
  a payment of group ``giftCard``).
"""
from .util import hex_id, iso_offset

ORDER_KINDS = ("plain", "marketplace", "seller", "split", "pickup", "gift_card")
OWN_SELLER = "1"
DEFAULT_SELLER_ID = "sandboxseller1"
DEFAULT_SELLER_NAME = "Sandbox Seller One"
MARKETPLACE_AFFILIATE = "SBM"
MARKETPLACE_NAME = "sandboxmarketplace"
MARKETPLACE_SALES_CHANNEL = "2"
FULFILLMENT = "Fulfillment"
MARKETPLACE_DOMAIN = "Marketplace"

_PICKUP_POINTS = [
    ("1_loja-paulista", "Loja Paulista", "Avenida Paulista", "1578", "Bela Vista", "São Paulo", "SP", "01310-200",
     (-46.6559, -23.5614)),
    ("1_loja-botafogo", "Loja Botafogo", "Praia de Botafogo", "300", "Botafogo", "Rio de Janeiro", "RJ", "22250-040",
     (-43.18259, -22.94436)),
]


def event_domain(order):
    """VTEX's event domain for an order: Marketplace when none of its items is the account's own."""
    sellers = {item.get("seller") for item in order["items"]}
    return FULFILLMENT if not sellers or OWN_SELLER in sellers else MARKETPLACE_DOMAIN


def make_marketplace(order, rng):
    number = rng.randrange(10**9, 10**10)
    order["marketplaceOrderId"] = f"{MARKETPLACE_AFFILIATE}-{number}"
    order["affiliateId"] = MARKETPLACE_AFFILIATE
    order["salesChannel"] = MARKETPLACE_SALES_CHANNEL
    order["marketplaceServicesEndpoint"] = f"https://{MARKETPLACE_NAME}.example.com/api/vtex/orders/{number}"
    order["marketplace"] = {"baseURL": f"https://{MARKETPLACE_NAME}.example.com/api/vtex", "isCertified": None,
                            "name": MARKETPLACE_NAME}


def make_seller(order, seller_id=DEFAULT_SELLER_ID, seller_name=DEFAULT_SELLER_NAME, *, order_id=None):
    """Every item sold (and fulfilled) by ``seller_id``; ``order_id`` renames the order."""
    if order_id is not None:
        _rename(order, order_id)
    for item in order["items"]:
        item["seller"] = seller_id
    order["sellers"] = [{"id": seller_id, "name": seller_name, "logo": "",
                         "fulfillmentEndpoint": f"http://fulfillment.vtexcommerce.com.br/api/fulfillment?an={seller_id}"}]
    order["sellerOrderId"] = f"00-{order['orderId']}"


def seller_order_id(number):
    return f"SLR-{number}-01"


def _rename(order, order_id):
    order["orderId"] = order_id
    order["sellerOrderId"] = f"00-{order_id}"
    for item in order["items"]:
        item["lockId"] = f"00-{order_id}"


def make_split_part(order, order_group, part):
    """Part ``part`` (1, 2, ...) of the purchase ``order_group``: id ``<group>-0<part>``."""
    _rename(order, f"{order_group}-{part:02d}")
    order["orderGroup"] = order_group


def make_pickup(order, rng):
    point_id, name, street, number, hood, city, state, postal, (lon, lat) = rng.choice(_PICKUP_POINTS)
    address = {"addressType": "pickup", "receiverName": order["shippingData"]["address"]["receiverName"],
               "addressId": point_id.split("_", 1)[1], "postalCode": postal, "city": city, "state": state,
               "country": "BRA", "street": street, "number": number, "neighborhood": hood, "complement": "",
               "reference": None, "geoCoordinates": [lon, lat]}
    info = {"additionalInfo": "Retire no balcão com um documento.",
            "address": {k: v for k, v in address.items() if k not in ("addressType", "receiverName", "addressId",
                                                                      "geoCoordinates")},
            "dockId": "1", "friendlyName": name, "isPickupStore": True}
    sla = f"Retirada ({name})"
    for entry in order["shippingData"]["logisticsInfo"]:
        entry.update({"selectedSla": sla, "price": 0, "listPrice": 0, "sellingPrice": 0, "deliveryCompany": name,
                      "shippingEstimate": "0bd", "deliveryChannel": "pickup-in-point", "pickupPointId": point_id,
                      "pickupStoreInfo": dict(info)})
        entry["slas"] = [{"id": sla, "name": sla, "price": 0, "shippingEstimate": "0bd",
                          "deliveryChannel": "pickup-in-point", "pickupPointId": point_id,
                          "pickupStoreInfo": dict(info)}]
        for delivery in entry["deliveryIds"]:
            delivery["courierName"] = name
    order["shippingData"]["address"] = address
    order["shippingData"]["selectedAddresses"] = [dict(address)]
    _set_total(order, "Shipping", 0)


def make_gift_card(order, rng, amount=None):
    """Pay ``amount`` cents (default: half the order, at least 1) with a gift card, the rest as before."""
    value = order["value"]
    paid = max(1, min(value, value // 2 if amount is None else int(amount)))
    card_id = str(rng.randrange(1, 10**6))
    code = "-".join(hex_id(rng, 2) for _ in range(4))
    order["paymentData"]["giftCards"] = [{
        "id": card_id, "redemptionCode": code, "name": "Vale-presente", "caption": "Vale-presente Sandbox",
        "value": paid, "balance": 0, "provider": "VtexGiftCard", "groupName": "giftCardVtex", "inUse": True,
        "isSpecialCard": False}]
    transaction = order["paymentData"]["transactions"][0]
    first = transaction["payments"][0]
    gift = {"id": hex_id(rng), "paymentSystem": "16", "paymentSystemName": "Vale-presente", "value": paid,
            "referenceValue": paid, "installments": 1, "group": "giftCard", "tid": str(rng.randrange(10**7, 10**8)),
            "lastDigits": None, "firstDigits": None, "dueDate": None, "connectorResponses": {},
            "billingAddress": None, "giftCardId": card_id, "giftCardName": "Vale-presente",
            "giftCardCaption": "Vale-presente Sandbox", "redemptionCode": code, "giftCardProvider": "VtexGiftCard",
            "giftCardAsDiscount": False}
    rest = value - paid
    if rest:
        first["value"] = first["referenceValue"] = rest
        transaction["payments"] = [gift, first]
    else:
        transaction["payments"] = [gift]


def _set_total(order, total_id, amount):
    for total in order["totals"]:
        if total["id"] == total_id:
            total["value"] = amount
    value = sum(t["value"] for t in order["totals"])
    order["value"] = value
    payments = order["paymentData"]["transactions"][0]["payments"]
    payments[0]["value"] = payments[0]["referenceValue"] = value


def estimate_date(now, estimate):
    """``shippingEstimateDate`` for an estimate such as ``3bd`` (business days, counted as days here)."""
    days = int("".join(ch for ch in estimate if ch.isdigit()) or 0)
    return iso_offset(now + days * 86400)
