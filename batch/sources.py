"""Input readers: JSONL (gzipped too), CSV and Parquet -> the rows handed to the scoring function, spread over
the cores, and their Layout.

JSONL lines go to Python whole, as the bytes of the file: there each line is checked as an online JSON body
is (UTF-8, JSON, an object, its key, its text), so that `{"text": 42}` stays a number (refused as
`invalid_text`, as online), a line that is not UTF-8 is refused as `invalid_utf8`, and the JVM parses nothing.
The key column holds each key's JSON text, or the declared --key-type (batch.keys). The first KEY_SAMPLE lines
are read on the driver only to catch a mistyped --key-column or --text-column before the job starts. For CSV
and Parquet the key column passes through as it is, and a text column that is not a string is JSON-encoded,
to be refused in Python as online.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, MapType, StringType, StructType

from batch.errors import UsageError
from batch.keys import SPARK_TYPES
from batch.scoring import JSON, PLAIN, Encoding, Layout, text_fields
from batch.settings import JobSettings

logger = logging.getLogger(__name__)
TEXT = "_text"  # the text value column handed to the scoring function
# JSONL lines read on the driver to check that the key and text fields exist: enough to tell a mistyped field
# name from a sparse one, and few enough that shipping them to the driver costs little next to the job
KEY_SAMPLE = 1_000
SPLIT_SIZE = "spark.sql.files.maxPartitionBytes"  # set per job by _even_splits


@dataclass(frozen=True)
class Source:
    frame: DataFrame  # the layout's rows: (key, TEXT), or JSONL lines in one column
    layout: Layout
    key_type: DataType  # the key column's type in the output


def read_source(spark: SparkSession, settings: JobSettings) -> Source:
    fmt = settings.format
    path = settings.input
    if fmt == "jsonl":
        return _jsonl(spark, path, settings)
    frame = _csv(spark, path) if fmt == "csv" else spark.read.parquet(path)
    _require_columns(frame, settings)
    text, encoding = _text_value(frame, settings.text_column)
    frame = _repartitioned(frame.select(F.col(settings.key_column), text.alias(TEXT)), settings, spark)
    key = frame.schema[settings.key_column].dataType
    return Source(frame, Layout(settings.key_column, key.simpleString(), encoding), key)


def _csv(spark: SparkSession, path: str) -> DataFrame:
    """RFC 4180 CSV with a header (Python's csv module writes it): quoted fields may span lines."""
    return spark.read.csv(path, header=True, multiLine=True, escape='"')


def _jsonl(spark: SparkSession, path: str, settings: JobSettings) -> Source:
    # Spark's text source keeps each line's bytes as they are: cast to binary, they reach Python undecoded
    lines = _even_splits(spark, lambda: spark.read.text(path), settings)
    lines = lines.select(F.col("value").cast("binary").alias("line"))
    fields = text_fields(settings.text_column)
    # take() reads the first split, and more only if it holds fewer lines; a limited collect reads every split
    records = [_record(row[0]) for row in lines.take(KEY_SAMPLE)]
    records = [r for r in records if r is not None]
    if records and not any(settings.key_column in r for r in records):
        raise UsageError(
            f"none of the first {KEY_SAMPLE} lines of {settings.input} has the key field {settings.key_column!r} "
            "(--key-column)"
        )
    if records and not any(f in r for r in records for f in fields):  # one row without text is an error row
        raise UsageError(
            f"none of the first {KEY_SAMPLE} lines of {settings.input} has the text field "
            f"{settings.text_column!r} (--text-column)"
        )
    layout = Layout(settings.key_column, settings.key_type, text_fields=fields)
    return Source(_repartitioned(lines, settings, spark), layout, DataType.fromDDL(SPARK_TYPES[settings.key_type]))


def _record(line: bytes | None) -> dict | None:
    """A sampled line's object, or None for a line that is blank, not JSON or not an object."""
    try:
        record = json.loads(line) if line and not line.isspace() else None
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _require_columns(frame: DataFrame, settings: JobSettings) -> None:
    missing = [c for c in (settings.key_column, settings.text_column) if c not in frame.columns]
    if missing:
        raise UsageError(f"{settings.input} has no column {missing} (it has {frame.columns}): see --key/--text-column")


def _text_value(frame: DataFrame, name: str) -> tuple[Column, Encoding]:
    """(column handed to the scoring function, how it holds the text) for a text column of any type."""
    dtype = frame.schema[name].dataType
    if isinstance(dtype, StringType):
        return F.col(name), PLAIN
    if isinstance(dtype, (StructType, MapType)):
        return F.to_json(F.col(name)), JSON
    return F.to_json(F.col(name).cast("variant")), JSON


def _even_splits(spark: SparkSession, read, settings: JobSettings) -> DataFrame:
    """`read()` of a splittable input in enough splits (see _repartitioned) and, unless --partitions says how many,
    in a multiple of the slots, by the split size alone: every slot then runs as many equal tasks (eleven 128 MB
    splits on 2 slots left one slot idle for the whole last task), and no shuffle is needed to spread a large
    file. An input that does not split (a gzipped file) keeps Spark's split size and is repartitioned after
    reading."""
    slots = spark.sparkContext.defaultParallelism
    wanted = settings.partitions or 4 * slots
    frame = read()
    have = frame.rdd.getNumPartitions()
    if have >= wanted and (settings.partitions or have % slots == 0):  # --partitions: the user's count, as it is
        return frame
    target = wanted if settings.partitions else max(wanted, -(-have // slots) * slots)
    original = spark.conf.get(SPLIT_SIZE, None)
    spark.conf.set(SPLIT_SIZE, str(max(1, -(-_input_bytes(spark, frame) // target))))
    even = read()
    got = even.rdd.getNumPartitions()
    if got == have:  # the split size changes nothing: the input does not split
        _set(spark, original)
        return frame
    logger.info("reading the input in %d splits (was %d) for %d slots", got, have, slots)
    return even


@contextlib.contextmanager
def split_size_kept(spark: SparkSession):
    """Around a job: the session's split size as it was before, once the job ran. Spark plans the scan when the
    job runs, so _even_splits' size must hold until then, and no longer: the next job's input is another."""
    original = spark.conf.get(SPLIT_SIZE, None)
    try:
        yield
    finally:
        _set(spark, original)


def _set(spark: SparkSession, size: str | None) -> None:
    if size is None:
        spark.conf.unset(SPLIT_SIZE)
    else:
        spark.conf.set(SPLIT_SIZE, size)


def _input_bytes(spark: SparkSession, frame: DataFrame) -> int:
    """The size of the files a frame reads, from their filesystem (local, HDFS, S3: any Hadoop filesystem)."""
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    total = 0
    for name in frame.inputFiles():
        path = jvm.org.apache.hadoop.fs.Path(name)
        total += path.getFileSystem(conf).getFileStatus(path).getLen()
    return total


def _repartitioned(frame: DataFrame, settings: JobSettings, spark: SparkSession) -> DataFrame:
    """At least `partitions` tasks (default 4 per core): a single gzipped file is otherwise one task on one core."""
    wanted = settings.partitions or 4 * spark.sparkContext.defaultParallelism
    have = frame.rdd.getNumPartitions()
    if have >= wanted:
        return frame
    logger.info("spreading %d input partition(s) over %d tasks", have, wanted)
    return frame.repartition(wanted)
