"""Values of a text column -> prediction columns, with the TorchServe handler's own functions.

validation: handler.codec's checks (with the archive's limits), the same functions, in the same order, that
answer an online request: a JSONL line is checked as a JSON request body is (UTF-8, JSON, an object, its key,
its text), a CSV or Parquet row as an instance (its key, its text). Scoring: model.infer.score (one tokenizer
call and one forward pass per batch); the prediction object: handler.codec.prediction. Nothing is
re-implemented here: a row that the online server would refuse gets the same error code and message here, in
its `error` columns. `score_batch` is the job's scoring function on Arrow record batches (key in, key out);
`score_values` the column function's (the SQL `sentiment(text)`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from batch.keys import KEY_TYPES, key_text, typed_key
from handler.codec import (
    TEXT_FIELDS,
    check_key,
    check_object,
    check_text,
    decode_utf8,
    parse_json,
    prediction_values,
    record_text,
)
from handler.errors import ServingError
from handler.settings import Limits
from model.infer import Scorer, score

# The prediction object's fields as columns (handler.codec.prediction), then the error of a refused row.
COLUMN_TYPES = {
    "positive_review_probability": pa.float64(),
    "positive_review_logits": pa.float64(),
    "label": pa.string(),
    "unknown_token_fraction": pa.float64(),
    "out_of_vocabulary": pa.bool_(),
    "model_version": pa.string(),
    "error": pa.string(),
    "error_message": pa.string(),
}
COLUMNS = tuple(COLUMN_TYPES)
PREDICTION_COLUMNS = COLUMNS[:-2]  # handler.codec.PREDICTION_FIELDS, which prediction_values follows (tested)
_NO_ERROR = (None, None)
_NO_PREDICTION = (None,) * (len(PREDICTION_COLUMNS) - 1)
# CSV and Parquet key columns of a type a JSON key can have get the online key checks; others (dates, binary,
# decimals) have no JSON counterpart and pass through unchecked
CHECKED_KEY_TYPES = ("string", "bigint", "int", "smallint", "tinyint", "double", "float", "boolean")


@dataclass(frozen=True)
class Encoding:
    """How the values handed to the scoring function hold the review text."""

    json: bool = False  # JSON-encoded: a number stays a number, to be refused as online


PLAIN = Encoding()  # the values are the texts
JSON = Encoding(json=True)


@dataclass(frozen=True)
class Layout:
    """The rows handed to `score_batch`: a key column and a text value column, or one JSONL line each."""

    key: str  # the key column's name; for JSONL, the key field of each line
    key_type: str  # the key's Spark SQL type; for JSONL one of batch.keys.KEY_TYPES
    encoding: Encoding = PLAIN  # how the text value column holds the review text
    text_fields: tuple[str, ...] = ()  # JSONL: each row is a line (bytes) whose key and text fields are read here

    @property
    def lines(self) -> bool:
        return bool(self.text_fields)


def text_fields(text_column: str) -> tuple[str, ...]:
    """The JSONL fields read for the text: the online request's ("text", then "reviews") unless renamed."""
    return TEXT_FIELDS if text_column == TEXT_FIELDS[0] else (text_column,)


def decoded(value: object, encoding: Encoding = PLAIN) -> object:
    """A text value as the handler would see it: a JSON-encoded value is decoded first."""
    if not encoding.json or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ServingError("invalid_json", "the text field is not valid JSON") from None


def json_line(line: bytes, layout: Layout, limits: Limits) -> tuple[object, str | ServingError]:
    """(key, review text or the error) of one JSONL line, checked as the handler checks a JSON body.

    The key is kept whatever the checks say, as layout.key_type holds it (batch.keys)."""
    try:
        text = decode_utf8(line)
    except ServingError as err:
        return _salvaged_key(line, layout), err
    try:
        record = check_object(parse_json(text))
    except ServingError as err:
        return None, err  # no object, no key
    key = _key(record.get(layout.key), text, layout)
    try:
        return key, record_text(record, limits, layout.key, layout.text_fields)
    except ServingError as err:
        return key, err


def _salvaged_key(line: bytes, layout: Layout) -> object:
    """The key of a line that is not valid UTF-8, when the key itself is: the row is refused, the key kept."""
    text = line.decode("utf-8", "surrogateescape")
    try:
        record = json.loads(text)
        value = record.get(layout.key) if isinstance(record, dict) else None
        key = _key(value, text, layout)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # the bad bytes are not in the key
        if isinstance(key, str):
            key.encode("utf-8")  # nor in its text
    except (ValueError, RecursionError, UnicodeError):
        return None
    return key


def _key(value: object, line: str, layout: Layout) -> object:
    """The line's key as the layout's key type holds it: for `json`, its text as the line wrote it."""
    text = key_text(value, line, layout.key) if layout.key_type == "json" else None
    return typed_key(value, layout.key_type, text)


def checked(values: Sequence[object], limits: Limits, encoding: Encoding = PLAIN) -> list[str | ServingError]:
    """Each value as a valid review text, or the ServingError the online handler would answer with."""
    out: list[str | ServingError] = []
    for value in values:
        try:
            out.append(check_text(decoded(_plain(value), encoding), limits))
        except ServingError as err:
            out.append(err)
    return out


def checked_rows(
    keys: Sequence[object] | None, values: Sequence[object], limits: Limits, encoding: Encoding
) -> list[str | ServingError]:
    """Rows of a key column and a text column, checked as online instances: the key first, then the text."""
    if keys is None:
        return checked(values, limits, encoding)
    out: list[str | ServingError] = []
    for key, value in zip(keys, values, strict=True):
        try:
            check_key(key, limits)
            out.append(check_text(decoded(_plain(value), encoding), limits))
        except ServingError as err:
            out.append(err)
    return out


Row = tuple  # an output row: its values in COLUMNS' order


def scored_rows(scorer: Scorer, items: Sequence[str | ServingError], batch_size: int | None = None) -> list[Row]:
    """One row per item, in order: the prediction object's values for a valid text (`batch_size` texts per
    forward pass, all of them by default), or the error code and message."""
    rows: list[Row] = []
    size = batch_size or len(items) or 1
    for start in range(0, len(items), size):
        part = items[start : start + size]
        scores = iter(score(scorer, [item for item in part if isinstance(item, str)]))
        rows.extend(
            _error_row(item, scorer.version)
            if isinstance(item, ServingError)
            else prediction_values(next(scores), scorer.version) + _NO_ERROR
            for item in part
        )
    return rows


def _error_row(err: ServingError, version: str) -> Row:
    """A refused row: no prediction but the model version (the prediction object's last field), the error."""
    return (*_NO_PREDICTION, version, err.code, err.message)


def row_columns(rows: Sequence[Row]) -> dict[str, Sequence]:
    """The rows as COLUMNS: one sequence of values per column."""
    return dict(zip(COLUMNS, list(zip(*rows, strict=True)) or [()] * len(COLUMNS), strict=True))


def score_values(
    scorer: Scorer, values: Sequence[object], limits: Limits, encoding: Encoding = PLAIN
) -> dict[str, np.ndarray]:
    """One row per value, in order: probability, logit, label, version, or an error code and message."""
    rows = scored_rows(scorer, checked(values, limits, encoding))
    return {name: _objects(column) for name, column in row_columns(rows).items()}


def _objects(values: Sequence) -> np.ndarray:
    out = np.empty(len(values), dtype=object)  # np.array would make a float array of a column of floats
    out[:] = values
    return out


def score_batch(
    scorer: Scorer, limits: Limits, batch: pa.RecordBatch, layout: Layout, batch_size: int
) -> pa.RecordBatch:
    """An Arrow record batch of input rows -> one of output rows (the key, then COLUMNS), in the same order.

    Input columns: (key, text value), or for JSONL the lines alone (bytes), of which blank ones are skipped.
    Scored `batch_size` rows per forward pass."""
    if layout.lines:
        lines = [line for line in batch.column(0).to_pylist() if line and not line.isspace()]
        pairs = [json_line(line, layout, limits) for line in lines]
        keys = pa.array([key for key, _ in pairs], KEY_TYPES[layout.key_type])
        items = [item for _, item in pairs]
    else:
        keys = batch.column(0)
        checked_keys = keys.to_pylist() if layout.key_type in CHECKED_KEY_TYPES else None
        items = checked_rows(checked_keys, batch.column(1).to_pylist(), limits, layout.encoding)
    columns = row_columns(scored_rows(scorer, items, batch_size))
    arrays = [keys, *(pa.array(columns[name], COLUMN_TYPES[name], from_pandas=True) for name in COLUMNS)]
    return pa.RecordBatch.from_arrays(arrays, names=[layout.key, *COLUMNS])


def _plain(value: object) -> object:
    """numpy scalars -> Python ones, so that a refused value is named by its Python type, as online."""
    if isinstance(value, np.generic):
        return value.item()
    return value
