"""Bounds for untrusted strings and JSON before they are stored (PostgreSQL refuses NUL and
over-long values; a web worker must not walk an unbounded structure)."""
import json


class Unstorable(ValueError):
    """A value that cannot be stored as it is; `field` says which."""

    def __init__(self, message, *, field=""):
        super().__init__(message)
        self.field = field


def clean_text(value, *, field, max_length):
    if not isinstance(value, str):
        raise Unstorable(f"{field}: expected text", field=field)
    if "\x00" in value:
        raise Unstorable(f"{field}: contains a NUL character", field=field)
    if len(value) > max_length:
        raise Unstorable(f"{field}: longer than {max_length} characters", field=field)
    return value


def clean_json(value, *, field, max_depth, max_bytes):
    """The value if it is JSON that nests at most `max_depth` deep, encodes to at most `max_bytes`
    and has no NUL in any string or key; else Unstorable naming where."""
    stack = [(value, field, 1)]
    while stack:
        item, where, depth = stack.pop()
        if depth > max_depth:
            raise Unstorable(f"{where}: nested deeper than {max_depth} levels", field=where)
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str) or "\x00" in key:
                    raise Unstorable(f"{where}: a key is not storable text", field=where)
                stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if "\x00" in item:
                raise Unstorable(f"{where}: contains a NUL character", field=where)
        elif not (item is None or isinstance(item, (bool, int, float))):
            raise Unstorable(f"{where}: not a JSON value", field=where)
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise Unstorable(f"{field}: not JSON ({exc})", field=field) from None
    if size > max_bytes:
        raise Unstorable(f"{field}: larger than {max_bytes} bytes", field=field)
    return value
