"""The sandbox's orders, every kind, validate against VTEX's own Get order response schema.

The schema is the one in VTEX's published OpenAPI file (vtex/openapi-schemas, "VTEX - Orders API.json",
commit 0d207e53), kept trimmed of prose in tests/fixtures/vtex-orders-api.extract.json. It is
OpenAPI 3.0 (`nullable`), so it is checked with openapi-schema-validator's OAS30Validator, not with a
plain JSON Schema validator (which knows no `nullable`).
"""
import json
import re
from pathlib import Path

import pytest
from openapi_schema_validator import OAS30Validator

from vtex_sandbox import Sandbox
from vtex_sandbox.order_kinds import ORDER_KINDS

SPEC = json.loads((Path(__file__).parents[1] / "fixtures" / "vtex-orders-api.extract.json").read_text())
GET_ORDER = SPEC["paths"]["/api/oms/pvt/orders/{orderId}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
VALIDATOR = OAS30Validator({**GET_ORDER, "components": SPEC["components"]})

# The schema's quirks: the only errors let through, each where the schema contradicts itself or
# VTEX's own example in the same file; a consumer must accept what VTEX really sends.
QUIRKS = [
    # `integer` in the schema; the example (and real orders) carry 1.0.
    (r"items/\d+/unitMultiplier", "integral float"),
    # `integer` in the schema; the example has 10.0.
    (r"items/\d+/additionalInfo/dimension/(cubicweight|height|length|weight|width)", "integral float"),
    # A nullable *string* on the logistics line, while the same pickupStoreInfo under slas[] (and the
    # spec's PickupStoreInfo schema, and the example's pickup SLA) has an address *object*.
    (r"shippingData/logisticsInfo/\d+/pickupStoreInfo/address", "object"),
]


def _quirk(error):
    path = "/".join(str(part) for part in error.absolute_path)
    kind = ("integral float" if isinstance(error.instance, float) and error.instance.is_integer()
            else "object" if isinstance(error.instance, dict) else None)
    return error.validator == "type" and any(re.fullmatch(p, path) and kind == k for p, k in QUIRKS)


def _errors(order):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(order) if not _quirk(e)]


@pytest.mark.parametrize("kind", ORDER_KINDS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_kind_of_sandbox_order_validates_against_vtex_schema(kind, seed):
    sandbox = Sandbox(seed=seed)
    try:
        sandbox.add_account("schemastore", "k", "t", feed_config=None)
        ids = sandbox.create_orders("k", 4, kind=kind)
        sandbox.set_status("k", ids[0], "invoiced")
        sandbox.cancel_order_by_customer("k", ids[-1])
        for order_id in ids:
            order = sandbox.order("k", order_id)
            assert _errors(order) == [], order_id
    finally:
        sandbox.close()


def test_the_quirks_are_only_let_through_as_floats_where_listed():
    """The exceptions are narrow: a wrong type elsewhere, or a non-integral float, still fails."""
    sandbox = Sandbox(seed=4)
    try:
        sandbox.add_account("schemastore", "k", "t", feed_config=None)
        order = sandbox.order("k", sandbox.create_orders("k", 1)[0])
    finally:
        sandbox.close()
    assert any(_quirk(e) for e in VALIDATOR.iter_errors(order))  # the quirk is really there
    order["items"][0]["unitMultiplier"] = 1.5
    order["marketplaceServicesEndpoint"] = None   # a string in the schema, not nullable
    order["shippingData"]["logisticsInfo"][0]["shippingEstimateDate"] = None
    problems = _errors(order)
    assert any(p.startswith("items/0/unitMultiplier") for p in problems)
    assert any(p.startswith("marketplaceServicesEndpoint") for p in problems)
    assert any(p.startswith("shippingData/logisticsInfo/0/shippingEstimateDate") for p in problems)


def _response_schema(path, method):
    content = SPEC["paths"][path][method]["responses"]["200"]["content"]
    schema = next(iter(content.values()))["schema"]  # "application/json" or with "; charset=utf-8"
    return OAS30Validator({**schema, "components": SPEC["components"]})


def test_the_sandbox_order_list_and_feed_items_validate_too():
    sandbox = Sandbox(seed=5)
    try:
        sandbox.add_account("schemastore", "k", "t")
        for kind in ORDER_KINDS:
            sandbox.create_orders("k", 2, kind=kind)
        listed = sandbox.list_orders("k", {})
        items = sandbox.feed_retrieve("k", 10)
    finally:
        sandbox.close()
    assert listed["list"] and items
    for name, validator, body in (("list orders", _response_schema("/api/oms/pvt/orders", "get"), listed),
                                  ("feed items", _response_schema("/api/orders/feed", "get"), items)):
        assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)] == [], name
