"""The parsed order of every kind of order the sandbox makes: the fields an adapter needs for
marketplace, seller, split, pickup and gift-card orders are there, typed, without digging in the JSON."""
from decimal import Decimal

import pytest

from integration.plugins.parsed_order import parse_order
from vtex_sandbox import Sandbox


@pytest.fixture
def sandbox():
    sb = Sandbox(seed=8)
    sb.add_account("kindsstore", "k", "t", feed_config=None)
    yield sb
    sb.close()


def parsed(sandbox, kind, **options):
    return [parse_order(sandbox.order("k", oid)) for oid in sandbox.create_orders("k", 1, kind=kind, **options)]


def test_plain_and_marketplace_orders(sandbox):
    (plain,) = parsed(sandbox, "plain")
    assert plain.item_seller_ids() == {"1"} and plain.marketplace.order_id == "" and plain.sales_channel == "1"
    (market,) = parsed(sandbox, "marketplace")
    assert market.item_seller_ids() == {"1"} and market.marketplace.order_id.startswith("SBM-")
    assert (market.marketplace.name, market.marketplace.affiliate_id, market.sales_channel) == ("sandboxmarketplace", "SBM", "2")


def test_seller_and_split_orders(sandbox):
    (seller,) = parsed(sandbox, "seller", seller_id="acmeseller", seller_name="ACME")
    assert seller.order_id.startswith("SLR-") and seller.item_seller_ids() == {"acmeseller"}
    assert [(s.id, s.name) for s in seller.sellers] == [("acmeseller", "ACME")]
    first, second = parsed(sandbox, "split")
    assert first.order_group == second.order_group == first.order_id[:-3]
    assert (first.item_seller_ids(), second.item_seller_ids()) == ({"1"}, {"sandboxseller1"})


def test_pickup_orders(sandbox):
    (pickup,) = parsed(sandbox, "pickup")
    assert pickup.shipping and all(line.is_pickup for line in pickup.shipping)
    assert all(line.pickup_point_id.startswith("1_") and line.pickup_point_name.startswith("Loja") for line in pickup.shipping)
    assert pickup.totals.shipping == Decimal("0.00")


def test_gift_card_orders(sandbox):
    (order,) = parsed(sandbox, "gift_card", gift_card_amount=1234)
    assert [(c.value, c.provider) for c in order.gift_cards] == [(Decimal("12.34"), "VtexGiftCard")]
    assert sum(p.value for p in order.payments) == order.value
    assert order.payments[0].group == "giftCard"
    assert "redemption" not in repr(order).lower()
