"""A SparkSession bound to loopback, with one Python interpreter for driver and executors."""

from __future__ import annotations

import logging
import os
import sys
import time

from pyspark.sql import SparkSession

from batch.settings import SparkSettings

logger = logging.getLogger(__name__)

DEFAULTS = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",  # no web UI port; progress goes to the console and the log
    "spark.ui.showConsoleProgress": "true",
    "spark.python.worker.reuse": "true",  # the model is loaded once per Python worker, not per task
    "spark.sql.execution.arrow.maxRecordsPerBatch": "2048",
    "spark.sql.shuffle.partitions": "8",
    "spark.executorEnv.OMP_NUM_THREADS": "1",
}


def spark_session(settings: SparkSettings) -> tuple[SparkSession, float]:
    """(session, seconds it took to start)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    started = time.perf_counter()
    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    for key, value in {**DEFAULTS, "spark.pyspark.python": sys.executable, **settings.conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    seconds = time.perf_counter() - started
    logger.info("Spark %s started on %s in %.1f s", spark.version, settings.master, seconds)
    return spark, seconds
