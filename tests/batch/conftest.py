"""One local SparkSession for every batch test in the run, and small inputs written by the tests themselves."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from batch.session import spark_session
from batch.settings import SparkSettings
from tests.integration.conftest import server  # noqa: F401 - the real TorchServe the parity test compares with


@pytest.fixture(scope="session")
def spark():
    session, _ = spark_session(
        SparkSettings(master="local[2]", app_name="sentiment-batch-tests", conf={"spark.sql.shuffle.partitions": "4"})
    )
    yield session
    session.stop()


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows are dicts (written as JSON) or raw strings (written as they are: malformed lines)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def read_output(spark, output: Path | str, key: str = "key", json_keys: bool = False) -> dict:
    """key -> list of output rows (as dicts) from predictions.parquet; json_keys: a JSONL key column's JSON text
    read back into the value (the rows keep the text)."""
    out: dict = {}
    for row in spark.read.parquet(f"{output}/predictions.parquet").collect():
        value = row[key]
        if json_keys and value is not None:
            value = json.loads(value)
        out.setdefault(value, []).append(row.asDict())
    return out
