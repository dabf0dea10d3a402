"""Spark's batch-inference UDF over the archive, and the `sentiment` SQL function (the book's ML.PREDICT)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pyspark.ml.functions import predict_batch_udf
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from batch import mar as mar_files
from batch.scoring import PLAIN, Encoding

RESULT_TYPE = StructType(
    [
        StructField("positive_review_probability", DoubleType()),
        StructField("positive_review_logits", DoubleType()),
        StructField("label", StringType()),
        StructField("model_version", StringType()),
        StructField("error", StringType()),  # the handler's error code; null when the row was scored
        StructField("error_message", StringType()),
    ]
)


def ship(spark: SparkSession, mar: Path) -> str:
    """Send the archive and the code zip to every executor; returns the archive's name for SparkFiles.get."""
    mar = Path(mar).resolve()
    sc = spark.sparkContext
    shipped = getattr(sc, "_sentiment_shipped", set())
    if mar not in shipped:
        sc.addFile(str(mar))
        workdir = Path(tempfile.mkdtemp(prefix="sentiment-code-"))
        sc.addPyFile(str(mar_files.code_zip(mar, workdir / f"{mar.stem}-batch-code.zip")))
        shipped.add(mar)
        sc._sentiment_shipped = shipped
    return mar.name


def make_predict_fn(mar_name: str, encoding: Encoding):
    """Runs once per Python worker (predict_batch_udf caches the result): unpack and load the archive."""

    def make():
        from pyspark import SparkFiles

        from batch.mar import load
        from batch.scoring import score_values

        scorer, limits = load(Path(SparkFiles.get(mar_name)))

        def predict(texts):
            return score_values(scorer, texts, limits, encoding)

        return predict

    return make


def sentiment_udf(mar_name: str, encoding: Encoding = PLAIN, batch_size: int = 256):
    """A column function: text value -> struct of RESULT_TYPE; `encoding` says how the values hold the text."""
    return predict_batch_udf(make_predict_fn(mar_name, encoding), return_type=RESULT_TYPE, batch_size=batch_size)


def register_sql_function(spark: SparkSession, mar: Path, name: str = "sentiment", batch_size: int = 256) -> None:
    """Make `SELECT id, sentiment(text) FROM reviews` work in this session."""
    spark.udf.register(name, sentiment_udf(ship(spark, mar), batch_size=batch_size))
