"""Values of a text column -> prediction columns, with the TorchServe handler's own functions.

validation: handler.codec.check_text (with the archive's limits); scoring: model.infer.score (one tokenizer
call and one forward pass per batch); the prediction object: handler.codec.prediction. Nothing is re-implemented
here: a row that the online server would refuse gets the same error code here, in its `error` column.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from handler.codec import Limits, check_text, prediction
from handler.errors import BadRequest, ServingError
from model.infer import Scorer, score

COLUMNS = (
    "positive_review_probability",
    "positive_review_logits",
    "label",
    "model_version",
    "error",
    "error_message",
)


@dataclass(frozen=True)
class Encoding:
    """How the values handed to the scoring function hold the review text."""

    json: bool = False  # JSON-encoded: a number stays a number, to be refused as online
    field: str | None = None  # with json: each value is a JSON object (a JSONL line) and the text is this field


PLAIN = Encoding()  # the values are the texts


def decoded(value: object, encoding: Encoding = PLAIN) -> object:
    """A text value as the handler would see it: JSON-encoded values (JSONL lines among them) are decoded first."""
    if not encoding.json or not isinstance(value, str):
        return value
    try:
        value = json.loads(value)
    except ValueError:
        raise BadRequest("invalid_json", "the text field is not valid JSON") from None
    if encoding.field is None:
        return value
    return value.get(encoding.field) if isinstance(value, dict) else None


def checked(values: Sequence[object], limits: Limits, encoding: Encoding = PLAIN) -> list[str | ServingError]:
    """Each value as a valid review text, or the ServingError the online handler would answer with."""
    out: list[str | ServingError] = []
    for value in values:
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
    logits = iter(score(scorer, texts))
    n = len(items)
    columns = {
        "positive_review_probability": np.full(n, np.nan),
        "positive_review_logits": np.full(n, np.nan),
        "label": np.full(n, None, dtype=object),
        "model_version": np.full(n, scorer.version, dtype=object),
        "error": np.full(n, None, dtype=object),
        "error_message": np.full(n, None, dtype=object),
    }
    for row, item in enumerate(items):
        if isinstance(item, ServingError):
            columns["error"][row], columns["error_message"][row] = item.code, item.message
            continue
        pred = prediction(next(logits), None, scorer.version)
        for name in ("positive_review_probability", "positive_review_logits", "label", "model_version"):
            columns[name][row] = pred[name]
    return columns


def _plain(value: object) -> object:
    """numpy and pandas scalars -> Python ones, and pandas' missing values -> None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
