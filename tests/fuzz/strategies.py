"""Hostile values: what a feed, a hook, VTEX's order answer or an ERP may send."""
import itertools

from hypothesis import strategies as st

_serial = itertools.count(1)


def unique():
    """A number no other example of the run has used (examples share one test database)."""
    return next(_serial)


def nested(depth, leaf=None):
    value = leaf
    for n in range(depth):
        value = [value] if n % 2 else {"n": value}
    return value


POISON_CHARS = ["\x00", "\ud800", "\udfff", "\ud83d", "\ufeff", "\u202e", "\n", "'", '"', "\\"]
hostile_chars = st.one_of(st.characters(), st.sampled_from(POISON_CHARS))
hostile_text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=hostile_chars, max_size=30),
    st.sampled_from([39, 40, 41, 63, 64, 65, 200, 5000]).map(lambda n: "x" * n),  # around every column length
    st.tuples(st.sampled_from([40, 64]), st.sampled_from(POISON_CHARS)).map(lambda t: "y" * t[0] + t[1]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), hostile_text)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
    max_leaves=10,
)
deep_values = st.integers(min_value=30, max_value=400).map(nested)
hostile_values = st.one_of(hostile_text, json_values, deep_values)
