"""Values of a text column -> prediction columns, with the TorchServe handler's own functions.

validation: handler.codec.check_text (with the archive's limits); scoring: model.infer.score (one tokenizer
call and one forward pass per batch); the prediction object: handler.codec.prediction. Nothing is re-implemented
here: a row that the online server would refuse gets the same error code here, in its `error` column.
`score_batch` is the job's scoring function on Arrow record batches (key in, key out); `score_values` the
column function's (the SQL `sentiment(text)`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from batch.keys import typed_key
from handler.codec import check_text, prediction
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
PREDICTION_COLUMNS = COLUMNS[:-2]
_ARROW_KEYS = {"bigint": pa.int64(), "double": pa.float64(), "boolean": pa.bool_(), "string": pa.string()}


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
    key_type: str  # the key's Spark SQL type; for JSONL bigint, double, boolean or string (batch.keys)
    encoding: Encoding = PLAIN  # how the text value column holds the review text
    text_field: str | None = None  # JSONL: each row is a line whose key and text fields are read here

    @property
    def lines(self) -> bool:
        return self.text_field is not None


def decoded(value: object, encoding: Encoding = PLAIN) -> object:
    """A text value as the handler would see it: a JSON-encoded value is decoded first."""
    if not encoding.json or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ServingError("invalid_json", "the text field is not valid JSON") from None


def json_line(line: str, key_field: str, text_field: str) -> tuple[object, object]:
    """(key, text value) of one JSONL line; a line that is not JSON has no key, and its text value is the error."""
    try:
        record = decoded(line, JSON)
    except ServingError as err:
        return None, err
    if not isinstance(record, dict):
        return None, None
    return record.get(key_field), record.get(text_field)


def checked(values: Sequence[object], limits: Limits, encoding: Encoding = PLAIN) -> list[str | ServingError]:
    """Each value as a valid review text, or the ServingError the online handler would answer with."""
    out: list[str | ServingError] = []
    for value in values:
        if isinstance(value, ServingError):  # already refused (a JSONL line that is not JSON)
            out.append(value)
            continue
        try:
            out.append(check_text(decoded(_plain(value), encoding), limits))
        except ServingError as err:
            out.append(err)
    return out


def score_values(
    scorer: Scorer, values: Sequence[object], limits: Limits, encoding: Encoding = PLAIN
) -> dict[str, np.ndarray]:
    """One row per value, in order: probability, logit, label, version, or an error code and message."""
    items = checked(values, limits, encoding)
    texts = [item for item in items if isinstance(item, str)]
    scores = iter(score(scorer, texts))
    n = len(items)
    columns = {name: np.full(n, None, dtype=object) for name in COLUMNS}
    columns["model_version"][:] = scorer.version
    for row, item in enumerate(items):
        if isinstance(item, ServingError):
            columns["error"][row], columns["error_message"][row] = item.code, item.message
            continue
        pred = prediction(next(scores), None, scorer.version)
        for name in PREDICTION_COLUMNS:
            columns[name][row] = pred[name]
    return columns


def score_batch(
    scorer: Scorer, limits: Limits, batch: pa.RecordBatch, layout: Layout, batch_size: int
) -> pa.RecordBatch:
    """An Arrow record batch of input rows -> one of output rows (the key, then COLUMNS), in the same order.

    Input columns: (key, text value), or for JSONL the lines alone, of which blank ones are skipped. Scored
    `batch_size` rows per forward pass."""
    if layout.lines:
        lines = [line for line in batch.column(0).to_pylist() if line and not line.isspace()]
        pairs = [json_line(line, layout.key, layout.text_field) for line in lines]
        keys = pa.array([typed_key(key, layout.key_type) for key, _ in pairs], _ARROW_KEYS[layout.key_type])
        values = [value for _, value in pairs]
    else:
        keys, values = batch.column(0), batch.column(1).to_pylist()
    starts = range(0, len(values), batch_size)
    parts = [score_values(scorer, values[i : i + batch_size], limits, layout.encoding) for i in starts]
    arrays = [keys]
    for name in COLUMNS:
        column = np.concatenate([part[name] for part in parts]) if parts else np.array([], dtype=object)
        arrays.append(pa.array(column, COLUMN_TYPES[name], from_pandas=True))
    return pa.RecordBatch.from_arrays(arrays, names=[layout.key, *COLUMNS])


def _plain(value: object) -> object:
    """numpy and pandas scalars -> Python ones, and pandas' missing values -> None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
