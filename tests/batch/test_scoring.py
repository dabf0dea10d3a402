"""The batch job's pure parts, without Spark: scoring equals the handler's path, archive, atomic output."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batch import mar as mar_files
from batch.keys import key_type, typed_key
from batch.output import staged, stale_siblings
from batch.scoring import COLUMNS, PREDICTION_COLUMNS, Encoding, Layout, score_batch, score_values
from batch.settings import JobSettings, format_of
from bench.reviews import load_reviews
from handler.codec import decode, respond
from model.infer import score
from tests.conftest import BOOK_REVIEWS, MAR


@pytest.fixture(scope="module")
def loaded(mar_path):
    return mar_files.load(mar_path)


def test_scores_equal_the_handlers_own_path(loaded):
    scorer, limits = loaded
    values = [
        *BOOK_REVIEWS.values(),
        *load_reviews(20),
        "",
        "   \n\t",
        42,
        None,
        ["list"],
        "x" * (limits.max_chars + 1),
    ]
    columns = score_values(scorer, values, limits)
    request = decode(json.dumps({"instances": [{"text": v} for v in values]}).encode(), "application/json", limits)
    _, body = respond(request, score(scorer, request.texts()), scorer.version)
    assert set(columns) == set(COLUMNS)
    for row, online in enumerate(body["predictions"]):
        if "error" in online:
            assert columns["error"][row] == online["error"]["code"]
            assert columns["error_message"][row] == online["error"]["message"]
            assert all(columns[name][row] is None for name in PREDICTION_COLUMNS if name != "model_version")
        else:
            assert columns["error"][row] is None
            assert {name: columns[name][row] for name in PREDICTION_COLUMNS} == online
            assert columns["positive_review_logits"][row] == online["positive_review_logits"]
            assert columns["label"][row] == online["label"]
        assert columns["model_version"][row] == scorer.version == mar_files.version(MAR)
    assert [c for c in columns["error"] if c] == [
        "empty_text",
        "empty_text",
        "invalid_text",
        "missing_text",
        "invalid_text",
        "text_too_long",
    ]


def test_json_encoded_values_are_decoded_as_the_handler_decodes_json(loaded):
    scorer, limits = loaded
    values = [json.dumps(BOOK_REVIEWS["positive"]), "42", "null", "{not json", None, json.dumps({"a": 1}), np.int64(3)]
    columns = score_values(scorer, values, limits, Encoding(json=True))
    assert list(columns["error"]) == [
        None,
        "invalid_text",
        "missing_text",
        "invalid_json",
        "missing_text",
        "invalid_text",
        "invalid_text",
    ]
    assert columns["label"][0] == "positive"


def test_numpy_and_pandas_values_are_plain_python_to_the_validation(loaded):
    scorer, limits = loaded
    columns = score_values(scorer, [np.int64(5), float("nan"), np.str_(BOOK_REVIEWS["negative"])], limits)
    assert list(columns["error"]) == ["invalid_text", "missing_text", None]
    assert columns["label"][2] == "negative"


def test_code_zip_carries_the_archives_own_model_and_handler_code(mar_path, tmp_path):
    target = mar_files.code_zip(mar_path, tmp_path / "code.zip")
    with zipfile.ZipFile(target) as z, zipfile.ZipFile(mar_path) as mar:
        names = set(z.namelist())
        assert {"batch/job.py", "batch/scoring.py", "model/infer.py", "handler/codec.py"} <= names
        assert z.read("handler/codec.py") == mar.read("handler/codec.py")
        assert z.read("model/text.py") == mar.read("model/text.py")


def test_the_archive_is_unpacked_once_per_process(mar_path):
    assert mar_files.unpack(mar_path) == mar_files.unpack(mar_path)
    assert (mar_files.unpack(mar_path) / "MAR-INF" / "MANIFEST.json").exists()


def test_staged_output_replaces_the_target_only_on_success(tmp_path):
    target = tmp_path / "out"
    with staged(target) as staging:
        (staging / "part").write_text("first")
    assert (target / "part").read_text() == "first"

    with pytest.raises(RuntimeError), staged(target) as staging:
        (staging / "part").write_text("half")
        raise RuntimeError("the job failed half-way")
    assert (target / "part").read_text() == "first" and not stale_siblings(target)

    with staged(target) as staging:
        (staging / "part").write_text("second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (target / "part").read_text() == "second"


def test_leftovers_of_a_killed_run_are_cleaned_and_a_retired_output_restored(tmp_path):
    target = tmp_path / "out"
    (tmp_path / ".out.staging-dead").mkdir()  # killed while writing
    (tmp_path / ".out.retired-dead").mkdir()  # killed between the two renames: the previous output
    (tmp_path / ".out.retired-dead" / "part").write_text("previous")
    with staged(target) as staging:
        assert (target / "part").read_text() == "previous"
        (staging / "part").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (target / "part").read_text() == "new"


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.jsonl", "jsonl"), ("a.jsonl.gz", "jsonl"), ("a.json", "jsonl"), ("a.csv", "csv"), ("dir.parquet", "parquet")],
)
def test_format_from_the_file_name(name, fmt):
    assert format_of(Path(name)) == fmt
    assert JobSettings(input=Path(name), output=Path("o")).format == fmt


def test_unknown_format_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="--format"):
        format_of(Path("reviews.txt"))
    with pytest.raises(ValueError):
        JobSettings(input=Path("a.csv"), output=Path("o"), input_format="xml")


def test_jsonl_lines_yield_their_key_and_text_field(loaded):
    scorer, limits = loaded
    lines = [
        json.dumps({"id": 1, "text": BOOK_REVIEWS["positive"]}),
        json.dumps({"id": 2, "text": 42}),
        json.dumps({"id": 3}),
        json.dumps({"id": "4", "text": BOOK_REVIEWS["negative"]}),  # a key of another type: a row without key
        json.dumps(["not", "an", "object"]),
        '{"id": 5, "text": "cut',
    ]
    batch = pa.RecordBatch.from_arrays([pa.array(lines)], names=["value"])
    out = score_batch(scorer, limits, batch, Layout("id", "bigint", text_field="text"), batch_size=2).to_pydict()
    assert list(out) == ["id", *COLUMNS]
    assert out["id"] == [1, 2, 3, None, None, None]
    assert out["error"] == [None, "invalid_text", "missing_text", None, "missing_text", "invalid_json"]
    expected = score_values(scorer, [BOOK_REVIEWS["positive"], BOOK_REVIEWS["negative"]], limits)
    assert out["positive_review_probability"][0] == expected["positive_review_probability"][0]
    assert out["label"][3] == expected["label"][1] == "negative"
    assert out["positive_review_probability"][1] is None and out["label"][1] is None


def test_a_key_column_passes_through_and_the_text_column_is_scored(loaded):
    scorer, limits = loaded
    keys = pa.array([b"k1", b"k2", None], pa.binary())  # any Arrow type comes back as it went in
    texts = pa.array([json.dumps(BOOK_REVIEWS["positive"]), "42", None])
    batch = pa.RecordBatch.from_arrays([keys, texts], names=["review_id", "_text"])
    out = score_batch(scorer, limits, batch, Layout("review_id", "binary", Encoding(json=True)), batch_size=256)
    assert out.column(0).equals(keys) and out.schema.names[0] == "review_id"
    assert out.column("error").to_pylist() == [None, "invalid_text", "missing_text"]
    assert out.column("out_of_vocabulary").to_pylist() == [False, None, None]
    assert out.num_rows == 3 and out.schema.field("positive_review_logits").type == pa.float64()


def test_an_empty_batch_gives_an_empty_batch(loaded):
    scorer, limits = loaded
    batch = pa.RecordBatch.from_arrays([pa.array([], pa.string())], names=["value"])
    out = score_batch(scorer, limits, batch, Layout("id", "string", text_field="text"), batch_size=256)
    assert out.num_rows == 0 and out.schema.names == ["id", *COLUMNS]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ([1, 2, None, 3], "bigint"),
        ([1, 2.5], "double"),
        ([True, False], "boolean"),
        (["a", "b"], "string"),
        ([1, "a"], "string"),
        ([True, 1], "string"),
        ([2**64], "string"),  # beyond bigint
        ([None, None], None),
        ([], None),
    ],
)
def test_the_key_type_of_a_sample(keys, expected):
    assert key_type(keys) == expected


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (7, "bigint", 7),
        (7.5, "bigint", None),
        ("7", "bigint", None),
        (True, "bigint", None),
        (2**63, "bigint", None),
        (7, "double", 7.0),
        (True, "double", None),
        (False, "boolean", False),
        ("x", "string", "x"),
        (7, "string", "7"),
        (True, "string", "true"),
        ({"a": "é"}, "string", '{"a": "é"}'),
        (None, "string", None),
    ],
)
def test_a_key_is_typed_or_dropped(value, kind, expected):
    assert typed_key(value, kind) == expected and type(typed_key(value, kind)) is type(expected)


def test_the_summary_line_names_error_codes_only_when_there_are_errors():
    from batch.summary import Summary

    counts = {"rows": 3, "duplicate_keys": 0, "duplicate_rows": 0, "model_version": "1.0", "seconds": 1.0}
    clean = Summary(scored=3, errors=0, errors_by_code={}, rows_without_key=0, rows_per_second=3.0, **counts)
    assert clean.line() == "3 rows: 3 scored, 0 errors in 1.0 s (3 rows/s), model 1.0"
    bad = Summary(
        scored=2, errors=1, errors_by_code={"empty_text": 1}, rows_without_key=1, rows_per_second=3.0, **counts
    )
    assert bad.line().startswith("3 rows: 2 scored, 1 errors {'empty_text': 1} in 1.0 s")
    assert bad.line().endswith("; 1 rows without a key")
