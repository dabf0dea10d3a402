"""The batch job: lock the output -> read -> score with the archive (batch.udf.scored) -> write atomically ->
summarize."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace

from pyspark.sql import DataFrame, SparkSession

from batch import mar as mar_files
from batch import sources, storage
from batch.errors import UsageError
from batch.output import staged
from batch.progress import Progress
from batch.settings import JobSettings
from batch.sources import read_source
from batch.storage import Storage
from batch.summary import Summary, summarize
from batch.udf import scored, ship

logger = logging.getLogger(__name__)
PARQUET = "predictions.parquet"
JSONL = "predictions.jsonl"
SUMMARY = "summary.json"
_KEY_MISMATCH = re.compile(r"KeyTypeMismatch: (.+)")


def predictions(spark: SparkSession, settings: JobSettings) -> DataFrame:
    """The scored frame (key column, then COLUMNS), lazily."""
    source = read_source(spark, settings)
    return scored(source.frame, ship(spark, settings.mar), source.layout, source.key_type, settings.batch_size)


def run(spark: SparkSession, settings: JobSettings) -> Summary:
    """Score `settings.input` into `settings.output` (replaced atomically); returns the summary."""
    settings.check_paths()
    version = mar_files.version(settings.mar)
    logger.info(
        "scoring %s (%s, key %r, text %r) with model %s from %s",
        settings.input,
        settings.format,
        settings.key_column,
        settings.text_column,
        version,
        settings.mar,
    )
    with Storage(spark, settings.output) as fs, staged(fs, settings.output) as target:
        started = time.perf_counter()
        parquet = storage.child(target, PARQUET)
        with Progress(spark.sparkContext), sources.split_size_kept(spark):
            _write(predictions(spark, settings), parquet)
        if settings.jsonl:  # the same rows, read back rather than scored twice
            spark.read.parquet(parquet).write.json(storage.child(target, JSONL), ignoreNullFields=False)
        seconds = time.perf_counter() - started  # read, score, write: the summary reads the output afterwards
        summary = replace(
            summarize(spark.read.parquet(parquet), settings.key_column, version, seconds),
            model_name=mar_files.name(settings.mar),
            key_column=settings.key_column,
            key_type=settings.key_type if settings.format == "jsonl" else "typed",
        )
        fs.write(storage.child(target, SUMMARY), summary.to_json().encode())
    logger.info("wrote %s: %s", settings.output, summary.line())
    return summary


def _write(frame: DataFrame, location: str) -> None:
    """Write the scored rows; a key that does not fit --key-type stops the job with its own message."""
    try:
        frame.write.parquet(location)
    except Exception as err:
        found = _KEY_MISMATCH.search(str(err))
        if found is None:
            raise
        raise UsageError(found.group(1).strip()) from None
