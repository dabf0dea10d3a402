"""A SparkSession bound to loopback, with one Python interpreter for driver and executors."""

from __future__ import annotations

import logging
import os
import sys
import time

from pyspark.sql import SparkSession

from batch import local
from batch.settings import SparkSettings

logger = logging.getLogger(__name__)

LOOPBACK = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
DEFAULTS = {
    "spark.ui.enabled": "false",  # no web UI port; progress goes to the console and the log
    "spark.ui.showConsoleProgress": "true",
    "spark.python.worker.reuse": "true",  # the model is loaded once per Python worker, not per task
    "spark.sql.execution.arrow.maxRecordsPerBatch": "2048",
    "spark.sql.shuffle.partitions": "8",  # both jobs shuffle small groups: Spark's 200 would be mostly empty
    "spark.executorEnv.OMP_NUM_THREADS": "1",
    # Python puts the directory a worker starts in first on its path; started from this repo, the workers would
    # import the working tree's code instead of the archive's (SparkContext.addPyFile puts that zip second)
    "spark.executorEnv.PYTHONSAFEPATH": "1",
}


def spark_session(settings: SparkSettings) -> tuple[SparkSession, float]:
    """(session, seconds it took to start).

    A local or loopback master binds everything to 127.0.0.1; under spark-submit (master None) the master and
    the addresses come from spark-submit's own settings.
    """
    tuned = local.applies(settings.master, settings.local_tuning)
    conf = {**DEFAULTS, **(local.conf() if tuned else {}), **settings.conf}
    if settings.master is not None and is_loopback(settings.master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf = {**LOOPBACK, **conf}
    if settings.master is not None:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf.setdefault("spark.pyspark.python", sys.executable)
    if settings.master is None:  # spark-submit's own --conf settings win over these defaults
        from pyspark import SparkConf

        given = SparkConf()
        conf = {k: v for k, v in conf.items() if k in settings.conf or not given.contains(k)}
    started = time.perf_counter()
    builder = SparkSession.builder.appName(settings.app_name)
    if settings.master is not None:
        builder = builder.master(settings.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    seconds = time.perf_counter() - started
    logger.info(
        "Spark %s started on %s in %.1f s%s",
        spark.version,
        spark.sparkContext.master,
        seconds,
        " (local tuning)" if tuned else "",
    )
    return spark, seconds


def is_loopback(master: str) -> bool:
    return master.startswith("local") or any(h in master for h in ("//127.0.0.1:", "//localhost:"))


def under_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ
