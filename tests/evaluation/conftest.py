"""One local SparkSession for the evaluation tests (the batch tier's, when it ran first), and the synthetic traffic
written once: capture files, label files in three formats, and a model store holding the shipped archive."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from batch.session import spark_session
from evaluation.cli import spark_settings
from tests import synthetic


@pytest.fixture(scope="session")
def spark():
    session, _ = spark_session(spark_settings("local[2]", {}, "sentiment-evaluation-tests"))
    yield session
    session.stop()


@pytest.fixture(scope="module")
def traffic(tmp_path_factory, mar_path) -> dict:
    root = tmp_path_factory.mktemp("evaluation")
    records = synthetic.predictions()
    synthetic.write_captures(root / "captures", records)
    rows = synthetic.write_labels(root / "feedback", synthetic.label_rows(records))
    store = root / "model_store"
    store.mkdir()
    shutil.copy2(mar_path, store / "sentiment.mar")  # version 1.0 with its baseline; 2.0 has no archive
    return {"root": root, "records": records, "labels": rows, "model_store": store}


def files_of(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
