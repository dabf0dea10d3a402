"""A class-data-sharing archive for the local Spark JVM: Spark's classes loaded and verified once, not every start.

    python -m batch.cds [--mar model_store/sentiment.mar]     (`make batch` and `make bench-batch` run it once)

A local job's JVM spends seconds of CPU finding, parsing and verifying the same thousands of classes in some 250
jars, on the cores the scoring needs. Java's AppCDS dumps the classes a run loaded into an archive that later JVMs
map instead (JDK 17: -XX:ArchiveClassesAtExit, -XX:SharedArchiveFile). The archive is made by running the real
job on a few reviews in a child process and lives in the virtual env, named for the pyspark version; a JVM that
cannot use it (another Java, another class path) ignores it and starts the slow way.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyspark

logger = logging.getLogger(__name__)
ARCHIVE = Path(sys.prefix) / f"spark-{pyspark.__version__}-classes.jsa"
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # no warning when an archive does not fit this JVM


def java_options(archive: Path = ARCHIVE) -> str:
    """The JVM options that use `archive`, or none when it has not been made."""
    return f"-XX:SharedArchiveFile={archive} {QUIET}" if archive.is_file() else ""


SAMPLE = ["A fine film.", "Dull and far too long.", ""] * 8  # the empty one takes the error path's classes too


def create(mar: Path, archive: Path = ARCHIVE) -> Path:
    """Run the job on a few reviews in a child process whose JVM dumps its classes into `archive` as it exits."""
    # the child's job logs only warnings: its summary of the sample rows would read as the user's job failing
    logger.info("warming up Spark's class-data archive (%d sample rows, once per install)", len(SAMPLE))
    partial = archive.with_name(f".{archive.name}.{os.getpid()}")
    subprocess.run([sys.executable, "-m", "batch.cds", "--mar", str(mar), "--dump", str(partial)], check=True)
    if not partial.is_file():
        raise RuntimeError(f"the JVM wrote no class archive to {partial}")
    partial.replace(archive)
    logger.info("wrote %s (%.0f MB)", archive, archive.stat().st_size / 2**20)
    return archive


def _dump(mar: Path, partial: Path) -> None:
    from pyspark import SparkContext

    from batch.job import run
    from batch.session import LOCAL_JVM, spark_session
    from batch.settings import JobSettings, SparkSettings

    options = f"{LOCAL_JVM} -XX:ArchiveClassesAtExit={partial} {QUIET}"
    with tempfile.TemporaryDirectory(prefix="sentiment-cds-") as tmp:
        reviews = Path(tmp) / "reviews.jsonl"
        lines = [{"id": i, "text": text} for i, text in enumerate(SAMPLE)]
        reviews.write_text("".join(json.dumps(line) + "\n" for line in lines))
        conf = {"spark.driver.extraJavaOptions": options, "spark.ui.showConsoleProgress": "false"}
        spark, _ = spark_session(SparkSettings(master="local[2]", conf=conf))
        run(spark, JobSettings(input=reviews, output=Path(tmp) / "out", mar=mar))
        spark.stop()
        jvm = SparkContext._gateway.proc
        jvm.stdin.close()  # the gateway JVM exits at the end of its stdin, and dumps the archive as it does
        jvm.wait(timeout=300)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mar", type=Path, default=Path("model_store/sentiment.mar"))
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)  # the child process's own option
    args = parser.parse_args(argv)
    level = logging.WARNING if args.dump else logging.INFO  # the child runs a sample job, not the user's
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.dump:
        _dump(args.mar, args.dump)
    else:
        create(args.mar, args.archive)


if __name__ == "__main__":
    main()
