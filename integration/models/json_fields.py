"""A JSON column written by orjson: the hub's large documents (VTEX's order JSON, a feed item).

Django's JSONField encodes with the standard library's `json.dumps`, 66 us for VTEX's 8 KB order
JSON; orjson takes 6. The column, its lookups and what is read back are Django's own: only the
encoder differs, and it is not part of the schema, so the field deconstructs as a plain JSONField
(no migration, and none that would rebuild a SQLite table)."""
import json

import orjson
from django.db import models


class CompactJSONEncoder(json.JSONEncoder):
    """`json.dumps(value, cls=CompactJSONEncoder)` written by orjson when it can, by the standard
    encoder when orjson refuses the value (a lone surrogate, a whole number past 64 bits, a key
    that is not a string, a type it does not know) or when indentation or sorted keys are asked
    for (the admin's display). orjson writes no spaces, non-ASCII as UTF-8 and NaN or infinity as
    null: the hub stores in these columns only documents clean_json accepted, which have neither,
    so what is read back is the same value."""

    def encode(self, o):
        if self.indent is None and not self.sort_keys:
            try:
                return orjson.dumps(o).decode()
            except TypeError:  # orjson.JSONEncodeError
                pass
        return super().encode(o)


class CompactJSONField(models.JSONField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("encoder", CompactJSONEncoder)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        if kwargs.get("encoder") is CompactJSONEncoder:
            del kwargs["encoder"]
        return name, "django.db.models.JSONField", args, kwargs
