"""Command line: python -m batch --input reviews.jsonl.gz --output predictions/ [options]."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from batch.errors import UsageError
from batch.settings import JobSettings, SparkSettings

logger = logging.getLogger(__name__)


def parse(argv: list[str] | None = None) -> tuple[JobSettings, SparkSettings]:
    p = argparse.ArgumentParser(
        prog="python -m batch",
        description="Score movie reviews offline with the deployed .mar archive on Spark.",
    )
    p.add_argument(
        "--input", required=True, help="a file or directory, a path or any Hadoop URI: JSONL (.gz too), CSV, Parquet"
    )
    p.add_argument("--output", required=True, help="output directory (path or URI), replaced atomically")
    p.add_argument("--format", dest="input_format", default="auto", choices=["auto", "jsonl", "csv", "parquet"])
    p.add_argument("--key-column", default="key", help="identifies each row in the output (default: key, as online)")
    p.add_argument("--text-column", default="text", help="the review text (default: text)")
    p.add_argument(
        "--key-type",
        default="json",
        choices=["json", "string", "bigint", "double"],
        help="JSONL: the key column's type (default json: each key's JSON text); a key that does not fit stops the job",
    )
    p.add_argument("--jsonl", action="store_true", help="also write predictions.jsonl/ beside the Parquet")
    p.add_argument("--mar", type=Path, default=Path("model_store/sentiment.mar"), help="the model archive")
    p.add_argument("--master", help="Spark master URL (default: local[*], or spark-submit's --master)")
    p.add_argument("--batch-size", type=int, default=256, help="reviews per forward pass (default: 256)")
    p.add_argument("--partitions", type=int, default=0, help="tasks to spread the input over (default: 4 per core)")
    p.add_argument(
        "--no-local-tuning",
        dest="local_tuning",
        action="store_const",
        const=False,
        help="leave out the local-master tuning (batch/local.py); it is never used for a cluster's master",
    )
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting")
    a = p.parse_args(argv)
    if any("=" not in item for item in a.conf):
        p.error("--conf takes KEY=VALUE")
    conf = dict(item.split("=", 1) for item in a.conf)
    job = JobSettings(
        input=a.input,
        output=a.output,
        mar=a.mar,
        input_format=a.input_format,
        key_column=a.key_column,
        text_column=a.text_column,
        jsonl=a.jsonl,
        batch_size=a.batch_size,
        partitions=a.partitions,
        key_type=a.key_type,
    )
    from batch.session import under_spark_submit

    master = a.master or (None if under_spark_submit() else "local[*]")
    return job, SparkSettings(master=master, conf=conf, local_tuning=a.local_tuning)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per gateway connection closed, even after the end
    try:
        return _score(argv)
    except UsageError as err:  # the user's to fix: the message alone; anything else is a bug and keeps its traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


def _score(argv: list[str] | None) -> int:
    job, spark_settings = parse(argv)
    job.check_paths()
    from batch.job import run
    from batch.session import spark_session

    # Spark's start takes seconds before it says anything itself
    logger.info(
        "starting Spark (%s), then scoring %s with %s into %s",
        spark_settings.master or "spark-submit's master",
        job.input,
        job.mar,
        job.output,
    )
    spark, startup = spark_session(spark_settings)
    try:
        summary = run(spark, job)
    finally:
        spark.stop()
    print(f"{job.output}: {summary.line()}; Spark started in {startup:.1f} s", file=sys.stderr)
    return 0
