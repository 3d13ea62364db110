"""clean_json decides most documents in C (orjson and one loop over the values) and walks every
value in Python only when that cannot say yes: the two must agree on every input, and the quick
way must be the one VTEX's order JSON takes."""
import enum
import json
import random
import time
import uuid
from datetime import date

import pytest
from hypothesis import given, settings, strategies as st

from integration.bounds import MAX_JSON_BYTES, MAX_JSON_DEPTH, Unstorable, _surely_storable, _walk, clean_json
from integration.models.json_fields import CompactJSONEncoder
from tests.fuzz.strategies import hostile_values, nested
from vtex_sandbox.orders import OrderFactory


class Color(enum.Enum):
    RED = "red"


def _walk_says(value, max_depth=MAX_JSON_DEPTH, max_bytes=MAX_JSON_BYTES):
    try:
        _walk(value, "x", max_depth, max_bytes)
    except Unstorable as exc:
        return str(exc)
    return "ok"


def _clean_json_says(value, max_depth=MAX_JSON_DEPTH, max_bytes=MAX_JSON_BYTES):
    try:
        assert clean_json(value, field="x", max_depth=max_depth, max_bytes=max_bytes) is value
    except Unstorable as exc:
        return str(exc)
    return "ok"


odd_leaves = st.sampled_from([
    float("nan"), float("inf"), -float("inf"), 2**63, 2**64, -(2**63) - 1, 10**4001, "a\\u0000b", "nul\x00",
    "\ud800", uuid.UUID(int=1), date(2026, 12, 3), Color.RED, (1, 2), b"bytes", True, 1.5, "", {}, [],
])
odd_values = st.recursive(
    st.one_of(hostile_values, odd_leaves),
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.one_of(st.text(max_size=5), st.integers(), st.sampled_from(["\x00", "\udc00"])),
                                        children, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, database=None)
@given(odd_values, st.sampled_from([(MAX_JSON_DEPTH, MAX_JSON_BYTES), (3, MAX_JSON_BYTES), (MAX_JSON_DEPTH, 200), (2, 60)]))
def test_the_quick_check_and_the_walk_agree(value, limits):
    depth, size = limits
    if _surely_storable(value, depth, size):
        assert _walk_says(value, depth, size) == "ok", value
    assert _clean_json_says(value, depth, size) == _walk_says(value, depth, size)


@pytest.mark.parametrize("value", [
    {"a": float("nan")}, [float("-inf")], {"k": "\x00"}, {"k\x00": 1}, {"k": "\ud800"}, {1: "int key"},
    [10**4001], {"u": uuid.UUID(int=1)}, {"d": date(2026, 12, 3)}, {"e": Color.RED}, [b"x"],
    nested(MAX_JSON_DEPTH + 1), nested(300), ["x" * 100] * (MAX_JSON_BYTES // 100),
])
def test_what_the_walk_refuses_the_quick_check_leaves_to_it(value):
    assert not _surely_storable(value, MAX_JSON_DEPTH, MAX_JSON_BYTES)
    with pytest.raises(Unstorable):
        clean_json(value, field="x")


def test_a_literal_backslash_u0000_is_text_not_a_nul():
    value = {"note": "C:\\u0000dir"}  # a backslash, then the letters u0000: storable
    assert not _surely_storable(value, MAX_JSON_DEPTH, MAX_JSON_BYTES)  # looks like an escaped NUL in C
    assert clean_json(value, field="x") is value  # the walk says yes


def test_depth_is_counted_as_the_walk_counts_it():
    # nested(n) holds None at depth n + 1: the last depth clean_json accepts is MAX_JSON_DEPTH.
    assert _surely_storable(nested(MAX_JSON_DEPTH - 1), MAX_JSON_DEPTH, MAX_JSON_BYTES)
    assert _walk_says(nested(MAX_JSON_DEPTH - 1)) == "ok"
    assert not _surely_storable(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH, MAX_JSON_BYTES)
    assert _walk_says(nested(MAX_JSON_DEPTH)).endswith(f"nested more than {MAX_JSON_DEPTH} levels deep")


def _orders(count):
    factory = OrderFactory(random.Random(7))
    return [factory.build(factory.new_order_id(), n, "store", time.time(), "ready-for-handling") for n in range(count)]


def test_vtex_order_json_takes_the_quick_way():
    for order in _orders(30):
        assert _surely_storable(order, MAX_JSON_DEPTH, MAX_JSON_BYTES)


def test_the_compact_encoder_writes_what_json_reads_back():
    order = _orders(1)[0]
    order["clientProfileData"]["firstName"] = "Conceição 東京"
    text = json.dumps(order, cls=CompactJSONEncoder)
    assert "Conceição 東京" in text and '": ' not in text  # orjson: UTF-8, no spaces
    assert json.loads(text) == order
    # What orjson refuses is written by the standard encoder, and indentation is honoured.
    assert json.loads(json.dumps({"n": 2**70}, cls=CompactJSONEncoder)) == {"n": 2**70}
    assert json.dumps({"a": 1}, cls=CompactJSONEncoder, indent=2) == '{\n  "a": 1\n}'
