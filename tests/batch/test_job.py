"""The batch job on a local Spark: one output row per input row with its key, error rows, duplicates, formats,
the SQL function, and atomic output when a run fails."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from batch import mar as mar_files
from batch import storage
from batch.job import JSONL, PARQUET, SUMMARY, run
from batch.scoring import COLUMNS, score_values
from batch.settings import JobSettings
from batch.udf import register_sql_function, ship
from bench.reviews import load_reviews
from tests.batch.conftest import read_output, write_jsonl
from tests.conftest import BOOK_REVIEWS


def _local(location: str) -> Path:
    return storage.local_path(location)


REVIEWS = [*BOOK_REVIEWS.values(), *load_reviews(21)]
BAD = {  # key -> (JSON value of "text", or "absent", expected error code)
    "null": (None, "missing_text"),
    "empty": ("", "empty_text"),
    "blank": ("  \n\t ", "empty_text"),
    "number": (42, "invalid_text"),
    "array": (["a review"], "invalid_text"),
    "object": ({"text": "nested"}, "invalid_text"),
    "absent": ("absent", "missing_text"),
}


def _rows() -> list:
    rows: list = [{"key": f"r{i}", "text": t} for i, t in enumerate(REVIEWS)]
    for key, (text, _) in BAD.items():
        rows.append({"key": key} if text == "absent" else {"key": key, "text": text})
    rows.append({"key": "r3", "text": BOOK_REVIEWS["neutral"]})  # a duplicate key
    rows.append('{"key": "cut", "text": "a line that was cut')  # malformed JSON: no key can be read
    rows[3:3] = ["", "  \t"]  # blank lines are not rows
    return rows


def _input_rows() -> list:
    return [r for r in _rows() if not isinstance(r, str) or r.strip()]


@pytest.fixture(scope="module")
def jsonl_run(spark, mar_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jsonl")
    settings = JobSettings(
        input=write_jsonl(tmp / "reviews.jsonl.gz", _rows()), output=tmp / "out", mar=mar_path, jsonl=True
    )
    return settings, run(spark, settings)


def test_every_input_row_yields_one_output_row_with_its_key(spark, jsonl_run):
    settings, summary = jsonl_run
    out = read_output(spark, settings.output, json_keys=True)
    rows = _input_rows()
    assert summary.rows == len(rows) == sum(len(v) for v in out.values())
    assert {k: len(v) for k, v in out.items() if k not in ("r3", None)} == {
        r["key"]: 1 for r in rows if isinstance(r, dict) and r["key"] != "r3"
    }
    assert len(out["r3"]) == 2 and len(out[None]) == 1
    columns = spark.read.parquet(f"{settings.output}/{PARQUET}").columns
    assert columns == ["key", *COLUMNS]


def test_scored_rows_carry_a_prediction_and_the_archives_version(spark, jsonl_run, mar_path):
    settings, _ = jsonl_run
    out = read_output(spark, settings.output, json_keys=True)
    version = mar_files.version(mar_path)
    for i in range(len(REVIEWS)):
        for row in out[f"r{i}"]:
            assert row["error"] is None and row["model_version"] == version
            assert 0.0 < row["positive_review_probability"] < 1.0
            assert row["label"] == ("positive" if row["positive_review_logits"] >= 0 else "negative")
    p = {name: out[f"r{i}"][0]["positive_review_probability"] for i, name in enumerate(BOOK_REVIEWS)}
    assert p["positive"] > 0.5 > p["negative"] and p["positive"] > p["neutral"] > p["negative"]


def test_bad_text_yields_an_error_row_not_a_failed_job(spark, jsonl_run):
    settings, summary = jsonl_run
    out = read_output(spark, settings.output, json_keys=True)
    for key, (_, code) in BAD.items():
        (row,) = out[key]
        assert row["error"] == code and row["error_message"]
        assert row["positive_review_probability"] is None and row["label"] is None
    assert out[None][0]["error"] == "invalid_json"
    assert summary.errors == len(BAD) + 1 and summary.scored == len(REVIEWS) + 1


def test_duplicate_and_missing_keys_are_reported(jsonl_run):
    settings, summary = jsonl_run
    assert (summary.duplicate_keys, summary.duplicate_rows, summary.duplicate_key_examples) == (1, 2, ['"r3"'])
    assert summary.rows_without_key == 1
    assert json.loads((_local(settings.output) / SUMMARY).read_text())["duplicate_keys"] == 1


def test_jsonl_output_on_request_holds_the_same_rows(spark, jsonl_run):
    settings, summary = jsonl_run
    lines = [json.loads(line) for f in sorted((_local(settings.output) / JSONL).glob("part-*")) for line in f.open()]
    assert len(lines) == summary.rows
    assert set(lines[0]) == {"key", *COLUMNS}
    parquet = read_output(spark, settings.output)
    for line in lines:
        if line["key"] not in ('"r3"', None):
            assert line["positive_review_probability"] == parquet[line["key"]][0]["positive_review_probability"]


def test_csv_and_parquet_inputs_with_other_column_names(spark, mar_path, tmp_path, jsonl_run):
    reviews = [*REVIEWS[:6], 'A "quoted" line,\nthen a second line with a comma, and <br /> markup.']
    with open(tmp_path / "reviews.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["review_id", "review"])
        writer.writerows([[f"r{i}", t] for i, t in enumerate(reviews)] + [["empty", ""]])
    frame = pd.DataFrame({"review_id": [f"r{i}" for i in range(len(reviews))], "review": reviews})
    frame.to_parquet(tmp_path / "reviews.parquet")
    results = {}
    for name in ("reviews.csv", "reviews.parquet"):
        settings = JobSettings(
            input=tmp_path / name, output=tmp_path / f"out-{name}", mar=mar_path, key_column="review_id",
            text_column="review",
        )  # fmt: skip
        summary = run(spark, settings)
        results[name] = read_output(spark, settings.output, key="review_id")
        assert summary.rows == len(reviews) + (name == "reviews.csv")
    assert results["reviews.csv"]["empty"][0]["error"] == "missing_text"  # CSV cannot tell "" from a null
    jsonl = read_output(spark, jsonl_run[0].output, json_keys=True)
    for i in range(len(reviews)):
        p = results["reviews.csv"][f"r{i}"][0]["positive_review_probability"]
        assert p == results["reviews.parquet"][f"r{i}"][0]["positive_review_probability"]
        if i < 6:  # another batch composition: float32 sums may differ in the last bits; r3 has a duplicate
            assert min(abs(p - row["positive_review_probability"]) for row in jsonl[f"r{i}"]) < 1e-6


def test_a_non_string_parquet_text_column_yields_error_rows(spark, mar_path, tmp_path):
    pd.DataFrame({"key": [1, 2, 3], "text": [10, 20, None]}).to_parquet(tmp_path / "numbers.parquet")
    settings = JobSettings(input=tmp_path / "numbers.parquet", output=tmp_path / "out", mar=mar_path)
    summary = run(spark, settings)
    out = read_output(spark, settings.output)
    assert summary.errors == 3 and summary.errors_by_code == {"invalid_text": 2, "missing_text": 1}
    assert sorted(out) == [1, 2, 3]  # the key keeps its type


def test_sql_function_works_like_ml_predict(spark, mar_path):
    register_sql_function(spark, mar_path)
    texts = [BOOK_REVIEWS["positive"], BOOK_REVIEWS["negative"], None, ""]
    spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id int, text string").createOrReplaceTempView(
        "reviews"
    )
    rows = {r["id"]: r["s"] for r in spark.sql("SELECT id, sentiment(text) AS s FROM reviews").collect()}
    scorer, limits = mar_files.load(mar_path)
    expected = score_values(scorer, texts, limits)
    for i in range(len(texts)):
        assert rows[i]["error"] == expected["error"][i]
        assert rows[i]["label"] == expected["label"][i]
    assert rows[0]["positive_review_probability"] == expected["positive_review_probability"][0]
    assert rows[0]["label"] == "positive" and rows[1]["label"] == "negative"
    assert rows[0]["out_of_vocabulary"] is False and rows[0]["unknown_token_fraction"] == 0.0
    assert (rows[2]["error"], rows[3]["error"]) == ("missing_text", "empty_text")
    assert rows[2]["out_of_vocabulary"] is None
    (label,) = spark.sql("SELECT sentiment(text).label FROM reviews WHERE id = 1").first()
    assert label == "negative"


def test_a_failed_run_leaves_the_previous_output_untouched(spark, mar_path, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [{"key": i, "text": t} for i, t in enumerate(REVIEWS[:8])])
    output = tmp_path / "out"
    settings = JobSettings(input=data, output=output, mar=mar_path)
    run(spark, settings)
    before = {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()}

    broken = tmp_path / "broken.mar"  # a real archive without its TorchScript file: every task fails
    with zipfile.ZipFile(mar_path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            if item.filename != "sentiment.pt":
                dst.writestr(item, src.read(item))
    with pytest.raises(Exception, match="sentiment.pt"):
        run(spark, JobSettings(input=data, output=settings.output, mar=broken))

    after = {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()}
    assert after == before and sorted(p.name for p in tmp_path.iterdir()) == ["broken.mar", "in.jsonl", "out"]


def test_a_missing_key_column_fails_before_anything_is_written(spark, mar_path, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", [{"review_id": 1, "text": REVIEWS[0]}])
    with pytest.raises(ValueError, match="the key field 'key'"):
        run(spark, JobSettings(input=data, output=tmp_path / "out", mar=mar_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no output, staging or lock


def test_local_workers_fork_from_the_preloading_daemon_and_score_with_the_archives_code(spark, mar_path):
    from pyspark.sql.functions import udf

    ship(spark, mar_path)  # the archive's code zip, as every run does

    @udf("string")
    def origin(_):
        import os

        import pyspark

        import batch.scoring
        import model.infer

        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = f.read().replace(b"\0", b" ").decode()
        return "|".join([parent, pyspark.__file__, batch.scoring.__file__, model.infer.__file__])

    parent, pyspark_file, batch_file, model_file = spark.range(1).select(origin("id")).first()[0].split("|")
    assert "sentiment_daemon" in parent
    assert ".zip" not in pyspark_file  # compiled once, from the installed package
    assert "/sentiment-code-" in batch_file and "/sentiment-code-" in model_file  # shipped, not the work tree
