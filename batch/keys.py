"""The key of a JSONL line, as the client wrote it (Keyed Predictions: outputs are joined back on it).

A JSON file has no schema, and a sample of lines cannot promise the type of the lines after it, so by default
(`--key-type json`) the key column holds each key's JSON text: `17`, `"r-17"`, `2.5`, `[1, 2]`. Every key comes
back whatever its type, and a reader gets the value back with one `json.loads` (or Spark's `from_json`). A
declared type (`--key-type string|bigint|double`) gives a typed column instead; a key that does not fit it
stops the job with a message naming the key, rather than coming back as null. A missing or null key is null
in either case (online, a null key is no key). The key's JSON text is Python's encoding of the parsed value:
the same value, with escapes resolved where UTF-8 can hold the result and floats in their shortest form.
"""

from __future__ import annotations

import json
import math
import re
from json.decoder import scanstring

import pyarrow as pa

KEY_TYPES = {"json": pa.string(), "string": pa.string(), "bigint": pa.int64(), "double": pa.float64()}
SPARK_TYPES = {"json": "string", "string": "string", "bigint": "bigint", "double": "double"}
_INT64 = (-(2**63), 2**63 - 1)
_SHOWN = 80  # characters of a key quoted in a message: keys are identifiers, never review text
# json.dumps(value, ensure_ascii=False) builds a new encoder on every call (only its defaults share one), which
# costs more than encoding a key; this one has exactly those settings and serves every row
_ENCODER = json.JSONEncoder(ensure_ascii=False)
_SCAN = json.JSONDecoder().scan_once  # one JSON value from an index: (value, index after it)
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace


def raw_member(text: str, name: str) -> str | None:
    """The text of member `name` of the JSON object `text`, exactly as written (the last one, as json.loads keeps
    the last of duplicates); None when the object has no such member. `text` is valid JSON (parsed before)."""
    found = None
    at = _SPACE.match(text, 0).end() + 1  # past "{"
    while True:
        at = _SPACE.match(text, at).end()
        if text[at] == "}":
            return found
        member, at = scanstring(text, at + 1)
        at = _SPACE.match(text, _SPACE.match(text, at).end() + 1).end()  # past ":"
        _, end = _SCAN(text, at)
        if member == name:
            found = text[at:end]
        at = _SPACE.match(text, end).end()
        at += text[at] == ","


def key_text(value: object, line: str, name: str) -> str | None:
    """The JSON text of a line's key `value` (member `name` of the JSON object `line`), as the line wrote it."""
    if value is None:
        return None
    if type(value) is int and value != 0:  # JSON writes an integer one way (only zero can be "-0")
        return int.__repr__(value)
    if type(value) is str and "\\" not in line:  # no escape anywhere in the line: the string as it was sent
        return _ENCODER.encode(value)
    return raw_member(line, name)


class KeyTypeMismatch(ValueError):
    """A key that the declared --key-type cannot hold: the job stops rather than lose it."""


def json_text(value: object) -> str:
    """The key's JSON text (NaN and infinities as JSON's common extension writes them)."""
    if type(value) is int:  # the usual key: the encoder writes an int as its repr, and it is ASCII
        return int.__repr__(value)
    text = _ENCODER.encode(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a "\\udc00" escape: kept as the escape
        return json.dumps(value)
    return text


def typed_key(value: object, key_type: str, text: str | None = None) -> object:
    """`value` (a parsed JSON value, None for a missing key) as a value of `key_type`, `text` its JSON text as
    sent (for `json`; json_text(value) when not given); raises KeyTypeMismatch."""
    if value is None:
        return None
    if key_type == "json":
        return json_text(value) if text is None else text
    if key_type == "string" and isinstance(value, str):
        return value
    if key_type == "bigint" and type(value) is int and _INT64[0] <= value <= _INT64[1]:
        return value
    if key_type == "double" and isinstance(value, float) and math.isfinite(value):  # 1e400 is no double
        return float(value)
    if key_type == "double" and type(value) is int and float(value) == value:
        return float(value)
    shown = json_text(value)
    shown = shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."
    raise KeyTypeMismatch(
        f"the key {shown} does not fit --key-type {key_type}: declare another type, or leave --key-type out "
        "to keep each key's JSON text"
    )
