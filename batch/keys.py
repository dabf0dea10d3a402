"""The key of a JSONL line, typed as the client wrote it (Keyed Predictions: outputs are joined back on it).

A JSON file has no schema, so the key column's type comes from a sample of lines: integers give `bigint`,
integers mixed with fractions `double`, booleans `boolean`, anything else (strings, or a mix of kinds) `string`.
A later key that does not fit that type is a row without key (null), counted in the summary; for `string`, a
number or boolean key is kept as its JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

_INT64 = (-(2**63), 2**63 - 1)


def key_type(keys: Iterable[object]) -> str | None:
    """The common type of the sampled keys (JSON values, None for a missing key); None when none was found."""
    kinds = {_kind(k) for k in keys if k is not None}
    if not kinds:
        return None
    if kinds == {"bigint"}:
        return "bigint"
    if kinds <= {"bigint", "double"}:
        return "double"
    if kinds == {"boolean"}:
        return "boolean"
    return "string"


def typed_key(value: object, key_type: str) -> object:
    """`value` (a JSON value) as a value of `key_type`, or None when it does not fit."""
    kind = _kind(value) if value is not None else None
    if key_type == "string":
        if kind is None or isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)
    if kind == key_type or (key_type == "double" and kind == "bigint"):
        return float(value) if key_type == "double" else value
    return None


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint" if _INT64[0] <= value <= _INT64[1] else "string"
    if isinstance(value, float):
        return "double"
    return "string"
