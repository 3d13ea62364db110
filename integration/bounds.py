"""What can be stored: one decision for every input from outside (feed, hook, order, ERP).

PostgreSQL refuses NUL characters in text and JSON, and over-long values in a varchar; both
databases refuse lone UTF-16 surrogates (they cannot be encoded as UTF-8); very deep JSON
overflows the recursion of every encoder. An input is checked here before it reaches a
database, and refused with a `Unstorable` that names the field, so the caller can record the
item as malformed instead of failing its neighbours.
"""
import json

import orjson

MAX_JSON_DEPTH = 64  # VTEX's order JSON is about 6 levels deep
MAX_JSON_BYTES = 2 * 1024 * 1024  # an order with hundreds of items is ~1 MB
RAW_PAYLOAD_BYTES = 64 * 1024  # a refused item's raw payload is kept up to this size
MAX_INT_DIGITS = 4000  # below Python's own limit for converting an int to text (4300)
_HUGE = 10**MAX_INT_DIGITS


class Unstorable(ValueError):
    """`field` cannot be stored, because of `reason`."""

    def __init__(self, field, reason):
        super().__init__(f"{field} {reason}")
        self.field, self.reason = field, reason


def text_problem(text):
    """Why `text` cannot be stored in any database, or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
    return None


def clean_text(value, *, field, max_length=None):
    """`value` as storable text, or Unstorable. `max_length` is the column's (model field's)."""
    if not isinstance(value, str):
        raise Unstorable(field, f"is a {type(value).__name__}, not a string")
    problem = text_problem(value)
    if problem:
        raise Unstorable(field, problem)
    if max_length is not None and len(value) > max_length:
        raise Unstorable(field, f"is {len(value)} characters long; at most {max_length} can be stored")
    return value


def max_length_of(model, name):
    """The column length of model field `name` (None for an unbounded text)."""
    return model._meta.get_field(name).max_length


def clean_json(value, *, field, max_depth=MAX_JSON_DEPTH, max_bytes=MAX_JSON_BYTES):
    """`value` (decoded JSON) if it can be stored as JSON, or Unstorable.

    Walked with a stack, not recursion, so depth itself cannot overflow the check. A document
    `_surely_storable` clears (nearly every one) skips the walk: it only explains a refusal."""
    if not _surely_storable(value, max_depth, max_bytes):
        _walk(value, field, max_depth, max_bytes)
    return value


def _walk(value, field, max_depth, max_bytes):
    """Every value checked in Python: raises Unstorable naming the first problem found."""
    stack, size = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise Unstorable(field, f"is nested more than {max_depth} levels deep")
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise Unstorable(field, f"a value {problem}")
            size += len(item) + 2
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise Unstorable(field, f"has a {type(key).__name__} key, not a string")
                problem = text_problem(key)
                if problem:
                    raise Unstorable(field, f"a key {problem}")
                size += len(key) + 4
                stack.append((inner, depth + 1))
        elif isinstance(item, (list, tuple)):
            size += 2
            stack.extend((inner, depth + 1) for inner in item)
        elif item is None or isinstance(item, bool):
            size += 5
        elif isinstance(item, int):
            if not -_HUGE < item < _HUGE:  # Python refuses to print it (int_max_str_digits); so would the encoder
                raise Unstorable(field, f"has a whole number of more than {MAX_INT_DIGITS} digits")
            size += 20
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise Unstorable(field, "has a number that is not finite")
            size += 12
        else:
            raise Unstorable(field, f"has a {type(item).__name__}, which is not JSON")
        if size > max_bytes:
            raise Unstorable(field, f"is larger than {max_bytes} bytes")


_PLAIN_SCALARS = frozenset((str, int, bool, type(None)))
_NUL_ESCAPE = b"\\u0000"


def _surely_storable(value, max_depth, max_bytes):
    """True when clean_json would accept `value`, decided mostly in C: False when unsure, and the
    walk then decides and says why. The walk checks every string in Python (NUL, encodable), 180-280 us
    for VTEX's 8 KB order JSON, 6 % of the hub's CPU; this takes about 60 us.

    orjson refuses what the walk refuses on strings and keys (a lone surrogate, a key that is not a
    string) and on numbers past 64 bits, and escapes a NUL as \\u0000, so its output shows one (a
    literal backslash followed by u0000 shows the same: the walk then decides). One loop over
    the values checks what orjson lets through: depth, types (orjson also writes dates, UUIDs and
    enums), and NaN or infinity (orjson writes null). Size: the walk's estimate of a value is at most
    ten times its compact encoding (20 for an int written "1,")."""
    if type(value) is not dict and type(value) is not list:
        return False  # a scalar or a subclass: the walk is as quick
    try:
        encoded = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, a key, a big int, a type, depth
        return False
    if 10 * len(encoded) + 64 > max_bytes or _NUL_ESCAPE in encoded:
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if item and depth >= max_depth:  # its values would sit deeper than max_depth
            return False
        for inner in (item.values() if type(item) is dict else item):
            kind = type(inner)
            if kind is dict or kind is list:
                stack.append((inner, depth + 1))
            elif kind is float:
                if inner - inner:  # NaN or infinity: x - x is NaN, not 0.0
                    return False
            elif kind not in _PLAIN_SCALARS:
                return False
    return True


def _escape(text):
    text = text.replace("\x00", "\\u0000")
    if text_problem(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable_text(text, max_length=None):
    """`text` with NUL and lone surrogates escaped, cut at `max_length`: for a message that
    quotes outside input (a reason, an excerpt)."""
    text = _escape(str(text))
    if max_length is not None and len(text) > max_length:
        text = text[:max_length] + f"... [{len(text) - max_length} more characters cut]"
    return text


def make_storable(value, *, max_bytes=RAW_PAYLOAD_BYTES):
    """Any raw payload as something every database stores: for keeping a refused item.

    A storable JSON value small enough is returned as it is; anything else becomes text with NUL
    and lone surrogates escaped, cut at `max_bytes` with a marker saying how much was cut."""
    try:
        return clean_json(value, field="payload", max_bytes=max_bytes)
    except Unstorable:
        pass
    text = None
    for render in (lambda v: json.dumps(v, ensure_ascii=False, default=repr), _repr):
        try:
            text = render(value)
            break
        except Exception:  # RecursionError on deep nesting, a failing repr: try the next way
            continue
    if text is None:
        text = f"<unprintable {type(value).__name__}>"
    text = storable_text(text, max_bytes)
    return {"unstorable_raw": text}


def _repr(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[: RAW_PAYLOAD_BYTES + 1]).decode("utf-8", "replace")
    return repr(value)
