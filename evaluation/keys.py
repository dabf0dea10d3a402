"""The one rule by which a prediction's key meets its label, wherever the key travelled.

A key reaches the evaluation as a JSON string or number (captures, JSONL labels), as text that no longer says
which it was (CSV labels, a batch output's string column, Spark's reading of a number into a string field), as
a batch output's JSON text (`--key-type json`: `"r-17"` with its quotes, `17`), or as a typed number (a batch
output's bigint or double column, a Parquet label column). The client meant one key in all of them, so every
key becomes one canonical text:

  - text that spells a JSON number is that number: an integral one as its integer digits, exactly whatever its
    size (`7`, `"7"`, `7.0`, `7e0` and `"7.0"` are one key; 2**53 + 1 stays itself), another one as its plain
    decimal spelling without trailing zeros, rounded half up to FRACTION_DIGITS places (`2.50` -> `2.5`);
    a number of MAX_INTEGER_DIGITS or more integer digits with a fraction or an exponent stays as written;
  - any other text is itself, byte for byte (unicode, spaces, `007`, which no JSON number spells);
  - a missing key, an empty or blank text, true and false are no key.

Text has to decide, not the type, because the sources that lost the type (CSV) must meet the ones that kept it.
The price: the strings "7" and "7.0" are one key. `canonical` is the rule in Python (evaluation.reference),
`canonical_column` the same rule as a Spark column (evaluation.job); tests/unit/test_evaluation_keys.py holds
them to each other over the matrix of sources and key types.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Context, Decimal

from pyspark.sql import Column
from pyspark.sql import functions as F

INTEGER = r"-?(0|[1-9][0-9]*)"
NUMBER = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"
FRACTION_DIGITS = 18  # Spark's decimal(38, 18): the widest fraction that keeps 20 integer digits (all of int64)
MAX_INTEGER_DIGITS = 38 - FRACTION_DIGITS
_INTEGER, _NUMBER = re.compile(INTEGER), re.compile(NUMBER)
_QUANTUM = Decimal(1).scaleb(-FRACTION_DIGITS)


def canonical(value: object) -> str | None:
    """The key as the join compares it: a parsed JSON value (str, int, float), a Decimal, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return canonical_text(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, str):
        return canonical_text(value)
    return canonical_text(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def canonical_text(text: str) -> str | None:
    if not text.strip():
        return None
    if _INTEGER.fullmatch(text):
        return "0" if text == "-0" else text
    if not _NUMBER.fullmatch(text):  # Python's repr of a float ("1e+16") and Spark's of a double ("1.0E10") match
        return text
    number = Decimal(text)
    if number and number.adjusted() >= MAX_INTEGER_DIGITS:  # beyond decimal(38, 18), as Spark's cast: as written
        return text
    number = number.quantize(_QUANTUM, rounding=ROUND_HALF_UP, context=Context(prec=40))
    plain = format(number, "f").rstrip("0").rstrip(".")
    return "0" if plain in ("-0", "") else plain


def from_json_text(text: str | None) -> str | None:
    """A batch output's key written as JSON text (`--key-type json`); text that is not JSON (an output written
    before its summary said the key's type, with a plain string column) is taken as itself."""
    if text is None:
        return None
    try:
        return canonical(json.loads(text))
    except ValueError:
        return canonical_text(text)


# -- the same rule on Spark ------------------------------------------------------------------------------------
def canonical_column(text: Column) -> Column:
    """canonical_text as a column of strings (a typed column: cast it to string first)."""
    number_like = text.rlike(f"^{NUMBER}$")
    decimal = text.try_cast(f"decimal(38,{FRACTION_DIGITS})")
    plain = F.regexp_replace(F.regexp_replace(decimal.cast("string"), r"0+$", ""), r"\.$", "")
    plain = F.when(plain == "-0", F.lit("0")).otherwise(plain)
    return (
        F.when(F.trim(text) == "", F.lit(None).cast("string"))
        .when(text.rlike(f"^{INTEGER}$"), F.when(text == "-0", F.lit("0")).otherwise(text))
        .when(number_like & decimal.isNotNull(), plain)
        .otherwise(text)
    )


def typed_column(column: Column) -> Column:
    """A typed key column (string, bigint, double, decimal) as canonical text."""
    return canonical_column(column.cast("string"))


def json_text_column(column: Column) -> Column:
    """A batch output's JSON-text key column: the JSON string's value, or the number's text, then the rule."""
    value = F.get_json_object(F.concat(F.lit('{"k":'), column, F.lit("}")), "$.k")
    return canonical_column(F.coalesce(value, column))  # not JSON: as from_json_text, the text itself
