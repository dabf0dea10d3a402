"""The batch job: read -> score with the archive (predict_batch_udf) -> write atomically -> summarize."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from batch import mar as mar_files
from batch.output import staged
from batch.progress import Progress
from batch.scoring import COLUMNS
from batch.settings import JobSettings
from batch.sources import TEXT, read_source
from batch.summary import Summary, summarize
from batch.udf import sentiment_udf, ship

logger = logging.getLogger(__name__)
PARQUET = "predictions.parquet"
JSONL = "predictions.jsonl"
SUMMARY = "summary.json"


def predictions(spark: SparkSession, settings: JobSettings) -> tuple[DataFrame, callable]:
    """The scored frame (key column, then COLUMNS), lazily; and a function that releases cached input."""
    source = read_source(spark, settings)
    udf = sentiment_udf(ship(spark, settings.mar), encoding=source.encoding, batch_size=settings.batch_size)
    scored = source.frame.select(F.col(source.key), udf(F.col(TEXT)).alias("p"))
    return scored.select(source.key, *(F.col(f"p.{name}").alias(name) for name in COLUMNS)), source.release


@contextmanager
def warming(spark: SparkSession, mar_name: str) -> Iterator[None]:
    """Load the archive in one Python worker while the JVM samples and spreads the input on the other cores.

    Spark reuses Python workers across jobs, so the scoring stage starts with one worker that has already
    imported torch and transformers and loaded the model (seconds of work), instead of all of them at once.
    A failure here is left to the scoring stage, which reports it with its cause.
    """

    def warm_up() -> None:
        one = spark.range(0, 1, 1, numPartitions=1).select(F.lit("warm-up").alias("text"))  # no Python to make it
        try:
            one.select(sentiment_udf(mar_name)("text")).collect()
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
    if not Path(settings.mar).is_file():
        raise FileNotFoundError(f"{settings.mar} is missing: build it with `make archive`")
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
    with Progress(spark.sparkContext), staged(settings.output) as staging, warming(spark, ship(spark, settings.mar)):
        frame, release = predictions(spark, settings)
        try:
            frame.write.parquet(str(staging / PARQUET))
        finally:
            release()
        written = spark.read.parquet(str(staging / PARQUET))
        if settings.jsonl:
            written.write.json(str(staging / JSONL), ignoreNullFields=False)
        seconds = time.perf_counter() - started
        summary = summarize(written, settings.key_column, version, seconds)
        (staging / SUMMARY).write_text(summary.to_json())
    logger.info("wrote %s: %s", settings.output, summary.line())
    return summary
