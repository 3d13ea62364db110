"""Realistic, self-consistent VTEX OMS orders (the shape of GET /api/oms/pvt/orders/{orderId}).

Money is in integer cents. Invariants every generated order satisfies:

* ``items[i].sellingPrice == items[i].price`` (no item-level promotion; ``listPrice >= price``);
* ``totals`` holds Items (sum of sellingPrice * quantity), Discounts (an order-level coupon, <= 0),
  Shipping (sum of ``shippingData.logisticsInfo[].price``) and Tax (0);
* ``value == sum(totals[].value)`` and ``paymentData.transactions[0].payments[0].value == value``;
* one ``logisticsInfo`` entry per item, ``itemIndex`` matching the item's position.
"""
import random

from .order_kinds import estimate_date
from .util import hex_id, iso_offset

STATUS_DESCRIPTIONS = {
    "order-created": "Processando",
    "payment-pending": "Pagamento Pendente",
    "payment-approved": "Pagamento Aprovado",
    "window-to-cancel": "Carência para Cancelamento",
    "ready-for-handling": "Pronto para o manuseio",
    "start-handling": "Iniciar Manuseio",
    "handling": "Preparando Entrega",
    "invoice": "Verificando Fatura",
    "invoiced": "Faturado",
    "cancel": "Cancelar",
    "canceled": "Cancelado",
}

_PRODUCTS = [
    ("Camiseta Básica Algodão", "CAM", 4990),
    ("Tênis Corrida Leve", "TEN", 29990),
    ("Mochila Urbana 20L", "MOC", 15990),
    ("Garrafa Térmica 500ml", "GAR", 8990),
    ("Fone Bluetooth", "FON", 19990),
    ("Caneca Cerâmica", "CAN", 2990),
    ("Boné Aba Curva", "BON", 5990),
    ("Jaqueta Corta-Vento", "JAQ", 34990),
    ("Meia Esportiva (3 pares)", "MEI", 3990),
    ("Óculos de Sol", "OCU", 12990),
]
_FIRST = ["Ana", "Bruno", "Carla", "Diego", "Elisa", "Fábio", "Gabriela", "Heitor", "Isabela", "João"]
_LAST = ["Silva", "Souza", "Oliveira", "Santos", "Pereira", "Lima", "Carvalho", "Ferreira", "Rodrigues", "Almeida"]
_PLACES = [
    ("São Paulo", "SP", "Bela Vista", "Avenida Paulista", "01310-100", (-46.6544, -23.5632)),
    ("Rio de Janeiro", "RJ", "Botafogo", "Rua Voluntários da Pátria", "22270-000", (-43.1867, -22.9519)),
    ("Belo Horizonte", "MG", "Savassi", "Rua Pernambuco", "30130-150", (-43.9352, -19.9370)),
    ("Curitiba", "PR", "Batel", "Avenida do Batel", "80420-090", (-49.2893, -25.4420)),
    ("Porto Alegre", "RS", "Moinhos de Vento", "Rua Padre Chagas", "90570-080", (-51.2030, -30.0260)),
    ("Recife", "PE", "Boa Viagem", "Avenida Boa Viagem", "51011-000", (-34.8960, -8.1180)),
]
_SLAS = [("Normal", "3bd", "Transportadora Sandbox"), ("Expressa", "1bd", "Sandbox Express")]
_PAYMENTS = [("2", "Visa", "creditCard"), ("4", "Mastercard", "creditCard"), ("6", "Boleto Bancário", "bankInvoice"),
             ("125", "Pix", "instantPayment")]


def _cpf(rng):
    digits = [rng.randrange(10) for _ in range(9)]
    for length in (9, 10):
        total = sum(d * (length + 1 - i) for i, d in enumerate(digits[:length]))
        digits.append((total * 10 % 11) % 10)
    return "".join(map(str, digits))


class OrderFactory:
    """Builds order dicts from a seeded ``random.Random``."""

    def __init__(self, rng=None):
        self.rng = rng or random.Random()

    def new_order_id(self):
        return f"{self.rng.randrange(10**12, 10**13)}-01"

    def build(self, order_id, sequence, account_name, now, status="order-created"):
        rng = self.rng
        items, logistics = [], []
        for index in range(rng.randint(1, 4)):
            name, ref, base = rng.choice(_PRODUCTS)
            sku = rng.randint(1, 999)
            price = max(190, base + rng.choice([-1000, -500, 0, 0, 500, 1000]))
            list_price = price + rng.choice([0, 0, 1000, 2000])
            quantity = rng.randint(1, 3)
            items.append({
                "uniqueId": hex_id(rng), "id": str(sku), "productId": str(sku // 10 + 1),
                "ean": str(rng.randrange(10**12, 10**13)), "lockId": f"00-{order_id}", "quantity": quantity,
                "seller": "1", "name": name, "refId": f"{ref}-{sku:03d}", "price": price, "listPrice": list_price,
                "manualPrice": None, "sellingPrice": price, "priceTags": [], "isGift": False, "tax": 0,
                "imageUrl": f"https://{account_name}.vteximg.com.br/arquivos/ids/{100000 + sku}-55-55/{ref.lower()}.jpg",
                "detailUrl": f"/{ref.lower()}-{sku}/p", "sellerSku": str(sku), "measurementUnit": "un",
                "unitMultiplier": 1.0, "commission": 0, "freightCommission": 0, "components": [], "attachments": [],
                "additionalInfo": {"brandName": "Sandbox Brand", "brandId": "2000000", "categoriesIds": "/1/",
                                   "categories": [{"id": 1, "name": "Sandbox"}],
                                   "dimension": {"cubicweight": 1.0, "height": 10.0, "length": 10.0,
                                                 "weight": 300.0, "width": 10.0}},
                "priceDefinition": {"sellingPrices": [{"value": price, "quantity": quantity}],
                                    "calculatedSellingPrice": price, "total": price * quantity},
            })
            sla, estimate, courier = _SLAS[0] if rng.random() < 0.8 else _SLAS[1]
            ship = rng.choice([0, 0, 590, 990, 1490, 2190])
            logistics.append({
                "itemIndex": index, "selectedSla": sla, "lockTTL": "10d", "price": ship, "listPrice": ship,
                "sellingPrice": ship, "deliveryWindow": None, "deliveryCompany": courier,
                "shippingEstimate": "3bd" if sla == "Normal" else estimate,
                # A string in VTEX's schema (not nullable): the day the estimate runs out.
                "shippingEstimateDate": estimate_date(now, "3bd" if sla == "Normal" else estimate),
                "deliveryChannel": "delivery", "slas": [{"id": sla, "name": sla, "price": ship,
                                                         "shippingEstimate": estimate, "deliveryChannel": "delivery"}],
                "shipsTo": ["BRA"],
                "deliveryIds": [{"courierId": "1", "courierName": courier, "dockId": "1", "quantity": quantity,
                                 "warehouseId": "1_1"}],
            })
        items_total = sum(i["sellingPrice"] * i["quantity"] for i in items)
        coupon = None
        discounts = 0
        if rng.random() < 0.25:
            coupon = rng.choice(["BEMVINDO10", "FRETE5", "SANDBOX15"])
            discounts = -(items_total * rng.choice([5, 10, 15]) // 100)
        shipping = sum(entry["price"] for entry in logistics)
        totals = [
            {"id": "Items", "name": "Total dos Itens", "value": items_total},
            {"id": "Discounts", "name": "Total dos Descontos", "value": discounts},
            {"id": "Shipping", "name": "Total do Frete", "value": shipping},
            {"id": "Tax", "name": "Total da Taxa", "value": 0},
        ]
        value = sum(t["value"] for t in totals)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, state, hood, street, postal, (lon, lat) = rng.choice(_PLACES)
        address = {
            "addressType": "residential", "receiverName": f"{first} {last}", "addressId": hex_id(rng, 8),
            "postalCode": postal, "city": city, "state": state, "country": "BRA", "street": street,
            "number": str(rng.randint(1, 3000)), "neighborhood": hood,
            "complement": rng.choice(["", "Apto 12", "Casa 2", "Bloco B"]), "reference": None,
            "geoCoordinates": [lon, lat],
        }
        pay_system, pay_name, group = rng.choice(_PAYMENTS)
        stamp = iso_offset(now)
        return {
            "orderId": order_id, "sequence": str(sequence), "marketplaceOrderId": "",
            # Strings in VTEX's schema (not nullable), as in its example.
            "marketplaceServicesEndpoint": f"http://oms.vtexinternal.com.br/api/oms?an={account_name}", "sellerOrderId": f"00-{order_id}", "origin": "Marketplace",
            "affiliateId": "", "salesChannel": "1", "merchantName": None, "status": status,
            "workflowIsInError": False, "statusDescription": STATUS_DESCRIPTIONS.get(status, status),
            "value": value, "creationDate": stamp, "lastChange": stamp, "orderGroup": order_id.split("-")[0],
            "followUpEmail": f"{hex_id(rng, 8).lower()}@ct.vtex.com.br", "lastMessage": None,
            "hostname": account_name, "isCompleted": True, "roundingError": 0, "orderFormId": hex_id(rng).lower(),
            "allowCancellation": True, "allowEdition": False, "isCheckedIn": False, "authorizedDate": None,
            "invoicedDate": None, "cancelReason": None, "checkedInPickupPointId": None,
            "totals": totals,
            "sellers": [{"id": "1", "name": account_name, "logo": "", "fulfillmentEndpoint":
                         f"http://fulfillment.vtexcommerce.com.br/api/fulfillment?an={account_name}"}],
            "clientPreferencesData": {"locale": "pt-BR", "optinNewsLetter": False},
            "cancellationData": None, "taxData": None, "subscriptionData": None,
            "itemMetadata": {"Items": []},
            "marketplace": {"baseURL": f"http://oms.vtexinternal.com.br/api/oms?an={account_name}",
                            "isCertified": None, "name": account_name},
            "storePreferencesData": {
                "countryCode": "BRA", "currencyCode": "BRL", "currencyLocale": 1046, "currencySymbol": "R$",
                "timeZone": "E. South America Standard Time",
                "currencyFormatInfo": {"CurrencyDecimalDigits": 2, "CurrencyDecimalSeparator": ",",
                                       "CurrencyGroupSeparator": ".", "CurrencyGroupSize": 3,
                                       "StartsWithCurrencySymbol": True},
            },
            "customData": None, "commercialConditionData": None, "openTextField": None, "invoiceData": None,
            "changesAttachment": None, "callCenterOperatorData": None, "giftRegistryData": None,
            "packageAttachment": {"packages": []},
            "ratesAndBenefitsData": {"id": "ratesAndBenefitsData", "rateAndBenefitsIdentifiers":
                                     ([{"id": hex_id(rng, 8), "name": f"Cupom {coupon}", "featured": False,
                                        "description": coupon}] if coupon else [])},
            "marketingData": ({"id": "marketingData", "coupon": coupon, "utmSource": "", "utmMedium": "",
                               "utmCampaign": ""} if coupon else None),
            "paymentData": {"giftCards": [], "transactions": [{
                "isActive": True, "transactionId": hex_id(rng), "merchantName": account_name.upper(),
                "payments": [{
                    "id": hex_id(rng), "paymentSystem": pay_system, "paymentSystemName": pay_name,
                    "value": value, "referenceValue": value, "installments": 1 if group != "creditCard" else
                    rng.choice([1, 1, 2, 3, 6]), "group": group, "tid": str(rng.randrange(10**7, 10**8)),
                    "lastDigits": "1111" if group == "creditCard" else None,
                    "firstDigits": "444433" if group == "creditCard" else None,
                    "dueDate": None, "connectorResponses": {}, "billingAddress": None,
                }],
            }]},
            "shippingData": {"id": "shippingData", "address": address, "logisticsInfo": logistics,
                             "selectedAddresses": [dict(address)], "trackingHints": None},
            "clientProfileData": {
                "id": "clientProfileData", "email": f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com",
                "firstName": first, "lastName": last, "documentType": "cpf", "document": _cpf(rng),
                "phone": f"+55{rng.choice(['11', '21', '31', '41', '51', '81'])}9{rng.randrange(10**7, 10**8)}",
                "corporateName": None, "tradeName": None, "corporateDocument": None, "stateInscription": None,
                "corporatePhone": None, "isCorporate": False, "userProfileId": hex_id(rng).lower(),
                "customerClass": None, "customerCode": None,
            },
            "items": items,
            "marketplaceItems": [],
        }
