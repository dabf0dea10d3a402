"""The end-of-job summary, computed from the written output (what a reader of the output will see)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)
EXAMPLES = 5  # duplicate keys listed in the summary; keys are identifiers, never review text


@dataclass(frozen=True)
class Summary:
    rows: int
    scored: int
    errors: int
    errors_by_code: dict[str, int]
    rows_without_key: int
    duplicate_keys: int  # distinct keys that occur more than once in the input
    duplicate_rows: int  # rows carrying such a key
    duplicate_key_examples: list = field(default_factory=list)
    model_version: str = ""
    # what the evaluation needs to read the output back as predictions of one model (evaluation.job)
    model_name: str = ""
    key_column: str = ""
    key_type: str = ""  # "json": the column holds each key's JSON text (batch.keys); else the column's own type
    seconds: float = 0.0  # reading, scoring and writing; Spark's start-up is not included
    rows_per_second: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    def line(self) -> str:
        codes = f" {self.errors_by_code}" if self.errors_by_code else ""
        text = (
            f"{self.rows} rows: {self.scored} scored, {self.errors} errors{codes} "
            f"in {self.seconds:.1f} s ({self.rows_per_second:.0f} rows/s), model {self.model_version}"
        )
        if self.duplicate_keys:
            text += f"; {self.duplicate_keys} duplicate keys on {self.duplicate_rows} rows"
        if self.rows_without_key:
            text += f"; {self.rows_without_key} rows without a key"
        return text


def summarize(predictions: DataFrame, key: str, model_version: str, seconds: float) -> Summary:
    counts = predictions.groupBy("error").count().collect()
    by_code = {row["error"]: row["count"] for row in counts if row["error"] is not None}
    rows = sum(row["count"] for row in counts)
    keyed = predictions.where(F.col(key).isNotNull())
    dupes = keyed.groupBy(key).count().where("count > 1").persist()
    try:
        dup = dupes.agg(F.count("*").alias("keys"), F.sum("count").alias("rows")).first()
        examples = [row[key] for row in dupes.orderBy(F.desc("count"), key).limit(EXAMPLES).collect()]
        without_key = predictions.where(F.col(key).isNull()).count()
    finally:
        dupes.unpersist()
    summary = Summary(
        rows=rows,
        scored=rows - sum(by_code.values()),
        errors=sum(by_code.values()),
        errors_by_code=dict(sorted(by_code.items())),
        rows_without_key=without_key,
        duplicate_keys=dup["keys"] or 0,
        duplicate_rows=dup["rows"] or 0,
        duplicate_key_examples=examples,
        model_version=model_version,
        seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
    )
    if summary.duplicate_keys:
        logger.warning(
            "input has %d duplicate keys on %d rows (e.g. %s): every row was scored, join on the key with care",
            summary.duplicate_keys,
            summary.duplicate_rows,
            examples,
        )
    if summary.rows_without_key:
        logger.warning("%d rows have no key (missing or null, or a line that is not a JSON object)", without_key)
    return summary
