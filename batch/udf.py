"""The archive on Spark's Python workers: the job's scoring over Arrow batches, and the `sentiment` SQL function.

Both load the archive once per Python worker (Spark reuses workers across tasks) with one torch thread and call
the same batch.scoring functions. The job maps whole Arrow record batches (`DataFrame.mapInArrow`): the key
passes through untouched and no pandas conversion sits between Spark and the model. The SQL function, which
has to be a column expression, is a pandas UDF over the same scoring function.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd  # the SQL function's batches; Spark resolves its type hints in this module
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import DataType, StructField, StructType

from batch import mar as mar_files
from batch.scoring import COLUMN_TYPES, PLAIN, Layout

RESULT_TYPE = StructType([StructField(name, from_arrow_type(arrow)) for name, arrow in COLUMN_TYPES.items()])


def ship(spark: SparkSession, mar: Path) -> str:
    """Send the archive and the code zip to every executor; returns the archive's name for SparkFiles.get."""
    mar = Path(mar).resolve()
    sc = spark.sparkContext
    shipped = getattr(sc, "_sentiment_shipped", set())
    if mar not in shipped:
        sc.addFile(str(mar))
        sc.addPyFile(str(mar_files.code_zip(mar)))
        shipped.add(mar)
        sc._sentiment_shipped = shipped
    return mar.name


def load_shipped(mar_name: str):
    """(Scorer, Limits) of the shipped archive, in a Python worker (loaded once per process)."""
    from pyspark import SparkFiles

    return mar_files.load(Path(SparkFiles.get(mar_name)))


def scored(frame: DataFrame, mar_name: str, layout: Layout, key_type: DataType, batch_size: int = 256) -> DataFrame:
    """`frame` (layout's rows) -> the key column, then COLUMNS: one output row per input row."""

    def score_batches(batches: Iterator) -> Iterator:
        from batch.scoring import score_batch

        scorer, limits = load_shipped(mar_name)
        for batch in batches:
            yield score_batch(scorer, limits, batch, layout, batch_size)

    schema = StructType([StructField(layout.key, key_type), *RESULT_TYPE.fields])
    return frame.mapInArrow(score_batches, schema)


def sentiment_udf(mar_name: str, batch_size: int = 256):
    """A column function: review text -> struct of RESULT_TYPE, `batch_size` texts per forward pass.

    A pandas UDF rather than Spark's predict_batch_udf, whose struct results cannot hold the boolean
    `out_of_vocabulary`; the archive is loaded once per Python worker either way (batch.mar caches it)."""
    from pyspark.sql.functions import pandas_udf

    def sentiment(texts: pd.Series) -> pd.DataFrame:
        from batch.scoring import score_values

        scorer, limits = load_shipped(mar_name)
        values = texts.astype(object).where(texts.notna(), None).tolist()  # a missing value is a null text
        parts = [
            score_values(scorer, values[i : i + batch_size], limits, PLAIN) for i in range(0, len(values), batch_size)
        ]
        return (
            pd.concat([pd.DataFrame(part) for part in parts], ignore_index=True)
            if parts
            else pd.DataFrame(columns=list(COLUMN_TYPES))
        )

    return pandas_udf(sentiment, RESULT_TYPE)


def register_sql_function(spark: SparkSession, mar: Path, name: str = "sentiment", batch_size: int = 256) -> None:
    """Make `SELECT id, sentiment(text) FROM reviews` work in this session."""
    spark.udf.register(name, sentiment_udf(ship(spark, mar), batch_size=batch_size))
