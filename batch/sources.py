"""Input readers: JSONL (gzipped too), CSV and Parquet -> one frame of (key, text value), spread over the cores.

The text column reaches the scoring function as the handler would see it: a string column as it is; any other
value JSON-encoded and decoded in Python, so that a number, an array or an object is refused as `invalid_text`,
as online. A JSONL line goes to Python whole, where `json.loads` reads its text field (so `{"text": 42}` stays a
number, not the string "42"); the JVM reads only the key, with a one-field schema that skips over the text
instead of building it as a Java string and encoding it back to JSON.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType, StructType

from batch.scoring import PLAIN, Encoding
from batch.settings import JobSettings

logger = logging.getLogger(__name__)
TEXT = "_text"  # the text value column handed to the UDF
KEY_SAMPLE = 10_000  # JSONL lines read to find the keys' type
_KEY_TYPES = re.compile(r"^(STRING|BIGINT|INT|SMALLINT|TINYINT|DOUBLE|FLOAT|BOOLEAN|DATE|TIMESTAMP)$")


@dataclass(frozen=True)
class Source:
    frame: DataFrame  # columns: the key column (its own name and type) and TEXT
    key: str
    encoding: Encoding  # how TEXT holds the review text

    def release(self) -> None:
        self.frame.unpersist()  # nothing is cached today; kept so that callers need not know


def read_source(spark: SparkSession, settings: JobSettings) -> Source:
    fmt = settings.format
    path = str(settings.input.resolve())
    if fmt == "jsonl":
        return _spread(_jsonl(spark, path, settings), settings, spark)
    frame = _csv(spark, path) if fmt == "csv" else spark.read.parquet(path)
    _require_columns(frame, settings)
    text, encoding = _text_value(frame, settings.text_column)
    source = Source(frame.select(F.col(settings.key_column), text.alias(TEXT)), settings.key_column, encoding)
    return _spread(source, settings, spark)


def _csv(spark: SparkSession, path: str) -> DataFrame:
    """RFC 4180 CSV with a header (Python's csv module writes it): quoted fields may span lines."""
    return spark.read.csv(path, header=True, multiLine=True, escape='"')


def _jsonl(spark: SparkSession, path: str, settings: JobSettings) -> Source:
    lines = spark.read.text(path).where(F.trim("value") != "")
    key_type = _json_key_type(lines.limit(KEY_SAMPLE), _json_path(settings.key_column))
    if key_type is None:
        raise ValueError(
            f"none of the first {KEY_SAMPLE} lines of {settings.input} has the key field {settings.key_column!r} "
            "(--key-column)"
        )
    lines = _repartitioned(lines, settings, spark)  # parsing then runs on every core, not in the reading task
    # a key that does not fit the sampled type, or a malformed line, gives a null key: a row without key
    key_schema = f"`{settings.key_column}` {key_type}"
    key = F.from_json("value", key_schema)[settings.key_column]
    frame = lines.select(key.alias(settings.key_column), F.col("value").alias(TEXT))
    return Source(frame, settings.key_column, Encoding(json=True, field=settings.text_column))


def _json_key_type(sample: DataFrame, key_path: str) -> str | None:
    """The sampled keys' common SQL type (string when they mix types); None when no sampled line has a key."""
    key = f"variant_get(try_parse_json(value), '{key_path}', 'variant')"
    found = sample.select(F.expr(f"schema_of_variant_agg({key})")).first()[0]
    if found is None or found == "VOID":
        return None
    if found.startswith("DECIMAL"):
        return "double"
    return found.lower() if _KEY_TYPES.match(found) else "string"


def _json_path(field: str) -> str:
    if not field or any(c in field for c in "\"'`"):
        raise ValueError(f"unsupported JSON field name {field!r}")
    return f'$["{field}"]'


def _require_columns(frame: DataFrame, settings: JobSettings) -> None:
    missing = [c for c in (settings.key_column, settings.text_column) if c not in frame.columns]
    if missing:
        raise ValueError(f"{settings.input} has no column {missing} (it has {frame.columns}): see --key/--text-column")


def _text_value(frame: DataFrame, name: str) -> tuple[Column, Encoding]:
    """(column handed to the UDF, how it holds the text) for a text column of any type."""
    dtype = frame.schema[name].dataType
    if isinstance(dtype, StringType):
        return F.col(name), PLAIN
    if isinstance(dtype, (StructType, MapType)):
        return F.to_json(F.col(name)), Encoding(json=True)
    return F.to_json(F.col(name).cast("variant")), Encoding(json=True)


def _repartitioned(frame: DataFrame, settings: JobSettings, spark: SparkSession) -> DataFrame:
    """At least `partitions` tasks (default 4 per core): a single gzipped file is otherwise one task on one core."""
    wanted = settings.partitions or 4 * spark.sparkContext.defaultParallelism
    have = frame.rdd.getNumPartitions()
    if have >= wanted:
        return frame
    logger.info("spreading %d input partition(s) over %d tasks", have, wanted)
    return frame.repartition(wanted)


def _spread(source: Source, settings: JobSettings, spark: SparkSession) -> Source:
    if settings.format == "jsonl":
        return source  # spread before parsing
    return Source(_repartitioned(source.frame, settings, spark), source.key, source.encoding)
