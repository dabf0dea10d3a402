"""The batch job: read -> score with the archive (batch.udf.scored) -> write atomically -> summarize."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

from batch import mar as mar_files
from batch.output import staged
from batch.progress import Progress
from batch.settings import JobSettings
from batch.sources import read_source
from batch.summary import Summary, summarize
from batch.udf import load_shipped, scored, ship

logger = logging.getLogger(__name__)
PARQUET = "predictions.parquet"
JSONL = "predictions.jsonl"
SUMMARY = "summary.json"


def predictions(spark: SparkSession, settings: JobSettings) -> DataFrame:
    """The scored frame (key column, then COLUMNS), lazily."""
    source = read_source(spark, settings)
    return scored(source.frame, ship(spark, settings.mar), source.layout, source.key_type, settings.batch_size)


@contextmanager
def warming(spark: SparkSession, mar_name: str) -> Iterator[None]:
    """Load the archive in one Python worker while the JVM samples and spreads the input on the other cores.

    The first Python task starts Spark's Python daemon, which imports torch and tokenizers (seconds of work)
    before it forks the workers; Spark reuses them across jobs. Started first, this overlaps with the driver
    reading the input, and the scoring stage starts with a loaded worker. It is a one-task RDD job: a query
    would first spend half a second being planned in a cold JVM. A failure here is left to the scoring stage,
    which reports it with its cause.
    """

    def warm_up() -> None:
        try:
            spark.sparkContext.parallelize([mar_name], 1).foreach(load_shipped)
        except Exception as err:  # noqa: BLE001 - see above
            logger.info("warm-up failed (%s); the scoring stage reports why", type(err).__name__)

    thread = threading.Thread(target=warm_up, name="batch-warm-up", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


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
    started = time.perf_counter()
    with warming(spark, ship(spark, settings.mar)), Progress(spark.sparkContext), staged(settings.output) as staging:
        predictions(spark, settings).write.parquet(str(staging / PARQUET))
        if settings.jsonl:  # the same rows, read back rather than scored twice
            spark.read.parquet(str(staging / PARQUET)).write.json(str(staging / JSONL), ignoreNullFields=False)
        seconds = time.perf_counter() - started  # read, score, write: the summary reads the output afterwards
        summary = summarize(spark.read.parquet(str(staging / PARQUET)), settings.key_column, version, seconds)
        (staging / SUMMARY).write_text(summary.to_json())
    logger.info("wrote %s: %s", settings.output, summary.line())
    return summary
