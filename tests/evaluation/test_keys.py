"""One rule for a key wherever it travelled (evaluation.keys): the Spark columns equal the Python rule, and every
source x key type meets its label, in each label format."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from evaluation import job, reference
from evaluation.feedback import read_rows
from evaluation.keys import canonical, canonical_column, from_json_text, json_text_column, typed_column
from handler.capture import Item, partition, record
from tests import synthetic

BIG = 2**53 + 1  # a double cannot hold it: the rule must never pass a key through one
TEXTS = ["7", "7.0", "7e0", "-0", "-0.0", "2.50", "1e+16", "1.0E10", "0.1", "1e-07", "1e+300", str(BIG), "r-17",
         "007", "héllo wörld ✓", " 7", "", "  ", "0.5000000000000000005", "12345678901234567891.5"]  # fmt: skip


def test_the_rule_in_python():
    assert canonical(7) == canonical("7") == canonical(7.0) == canonical("7.0") == canonical("7e0") == "7"
    assert canonical(BIG) == canonical(str(BIG)) == str(BIG) and canonical(float(BIG)) == str(2**53)
    assert canonical("007") == "007" and canonical(" 7") == " 7" and canonical("héllo") == "héllo"
    assert canonical(2.5) == canonical("2.50") == "2.5" and canonical(1e16) == canonical("1.0E16") == "1" + "0" * 16
    assert canonical(None) is canonical("") is canonical("  ") is canonical(True) is None
    assert from_json_text('"r-17"') == "r-17" and from_json_text("17") == from_json_text('"17"') == "17"
    assert from_json_text("k1") == "k1"  # not JSON: an older output's plain string column


def test_the_spark_columns_equal_the_python_rule(spark):
    frame = spark.createDataFrame([(t,) for t in TEXTS], "v string")
    for row in frame.select("v", canonical_column(F.col("v")).alias("c")).collect():
        assert row["c"] == canonical(row["v"]), row["v"]
    values = ["r-17", 17, 7.0, "7", BIG, "héllo wörld ✓", 0.1, "k1"]
    texts = [json.dumps(v) if v != "k1" else v for v in values]
    frame = spark.createDataFrame([(t,) for t in texts], "v string")
    for row in frame.select("v", json_text_column(F.col("v")).alias("c")).collect():
        assert row["c"] == from_json_text(row["v"]), row["v"]
    typed = spark.createDataFrame([(7.0, 7), (1e10, 2**62), (0.1, BIG), (1e-7, -3)], "d double, b bigint")
    for row in typed.select(
        "d", "b", typed_column(F.col("d")).alias("cd"), typed_column(F.col("b")).alias("cb")
    ).collect():
        assert (row["cd"], row["cb"]) == (canonical(row["d"]), canonical(row["b"]))


# each key as the clients sent it online (JSON string or number), and which batch key types can hold it
KEYS = {"r-17": ("json", "string"), 7: ("json", "bigint", "double"), BIG: ("json", "bigint"),
        "héllo wörld ✓": ("json", "string"), "007": ("json", "string"), 2.5: ("json", "double")}  # fmt: skip


def batch_output(directory, key_type: str, keys: list) -> None:
    directory.mkdir(parents=True)
    column = {"json": lambda: [json.dumps(k, ensure_ascii=False) for k in keys], "string": lambda: keys,
              "bigint": lambda: keys, "double": lambda: [float(k) for k in keys]}[key_type]()  # fmt: skip
    types = {"json": pa.string(), "string": pa.string(), "bigint": pa.int64(), "double": pa.float64()}
    n = len(keys)
    table = pa.table({"key": pa.array(column, types[key_type]), "positive_review_probability": [0.8] * n,
                      "positive_review_logits": [1.386] * n, "unknown_token_fraction": [0.0] * n,
                      "model_version": [f"batch-{key_type}"] * n,
                      "error": pa.array([None] * n, pa.string())})  # fmt: skip
    (directory / "predictions.parquet").mkdir()
    pq.write_table(table, directory / "predictions.parquet" / "part-0.parquet")
    summary = {"model_name": "sentiment", "key_column": "key", "key_type": key_type if key_type == "json" else "typed"}
    (directory / "summary.json").write_text(json.dumps(summary))


def write_labels(directory, fmt: str) -> None:
    """A label for every key, as that format holds it: JSONL keeps the JSON type, CSV only text, Parquet a typed
    column per file (integers in an int64 column, the others in a string or double column)."""
    directory.mkdir(parents=True)
    if fmt == "jsonl":
        (directory / "labels.jsonl").write_text("".join(json.dumps({"key": k, "label": 1}) + "\n" for k in KEYS))
    elif fmt == "csv":
        pd.DataFrame({"key": [str(k) for k in KEYS], "label": ["positive"] * len(KEYS)}).to_csv(
            directory / "labels.csv", index=False
        )
    else:
        for name, keys, kind in (("ints", [7, BIG], pa.int64()), ("floats", [2.5], pa.float64()),
                                 ("texts", ["r-17", "héllo wörld ✓", "007"], pa.string())):  # fmt: skip
            pq.write_table(
                pa.table({"key": pa.array(keys, kind), "label": [1] * len(keys)}), directory / f"{name}.parquet"
            )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_source_and_key_type_meets_its_label(spark, tmp_path, fmt):
    records = []
    for i, key in enumerate(KEYS):
        item = Item(f"r{i}:0", key, 100, 1.0, 20, 0, None, None)
        records.append(record(item, "sentiment", "1.0", synthetic.START + 10 + i, 1024))
    for r in records:
        path = partition(tmp_path / "captures", "sentiment", "1.0", synthetic.START) / "host-1.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(r) + "\n")
    outputs = []
    for key_type in ("json", "string", "bigint", "double"):
        keys = [k for k, types in KEYS.items() if key_type in types]
        batch_output(tmp_path / f"batch-{key_type}", key_type, keys)
        outputs.append(tmp_path / f"batch-{key_type}")
    write_labels(tmp_path / "feedback", fmt)
    inputs = job.Inputs(tmp_path / "captures", tmp_path / "feedback", tuple(outputs))
    got = job.aggregate(spark, inputs, 3600, {})
    assert got.counts["unmatched_label_keys"] == 0 and got.counts["labeled_keys"] == len(KEYS)
    # each source under a version of its own, so that none deduplicates another: each joins every key it holds
    labeled = {version: s.labeled for (_, _, version), s in got.stats.items()}
    want = {"1.0": len(KEYS)}
    want.update(
        {f"batch-{t}": sum(t in types for types in KEYS.values()) for t in ("json", "string", "bigint", "double")}
    )
    assert labeled == want
    if fmt != "parquet":  # the plain-Python reference reads the same labels to the same keys
        assert set(reference.labels_of(read_rows(tmp_path / "feedback")).latest) == {canonical(k) for k in KEYS}
