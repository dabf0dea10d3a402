"""The batch job's pure parts, without Spark: scoring equals the handler's path, keys, the archive."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batch import mar as mar_files
from batch import storage
from batch.keys import KeyTypeMismatch, typed_key
from batch.scoring import COLUMNS, PREDICTION_COLUMNS, Encoding, Layout, score_batch, score_values, text_fields
from batch.settings import JobSettings, format_of
from bench.reviews import load_reviews
from handler.codec import PREDICTION_FIELDS, decode, prediction, prediction_values, respond
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


def test_the_prediction_columns_are_the_prediction_objects_fields_in_its_order(loaded):
    scorer, _ = loaded
    assert PREDICTION_COLUMNS == PREDICTION_FIELDS
    assert (*PREDICTION_FIELDS, "error", "error_message") == COLUMNS
    [answer] = score(scorer, [BOOK_REVIEWS["positive"]])
    assert tuple(prediction(answer, "k", "1.0")) == ("key", *PREDICTION_FIELDS)
    assert tuple(prediction(answer, None, "1.0").values()) == prediction_values(answer, "1.0")


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


def test_numpy_values_are_plain_python_to_the_validation_and_nan_is_a_number_as_online(loaded):
    scorer, limits = loaded
    columns = score_values(scorer, [np.int64(5), float("nan"), np.str_(BOOK_REVIEWS["negative"])], limits)
    assert list(columns["error"]) == ["invalid_text", "invalid_text", None]
    assert columns["error_message"][0] == '"text" must be a string, got int'
    assert columns["label"][2] == "negative"


def test_code_zip_carries_the_archives_own_model_and_handler_code_and_is_made_once(mar_path, tmp_path):
    target = mar_files.code_zip(mar_path, tmp_path)
    assert target.name.startswith("sentiment-code-") and mar_files.code_zip(mar_path, tmp_path) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    with zipfile.ZipFile(target) as z, zipfile.ZipFile(mar_path) as mar:
        names = set(z.namelist())
        assert {"batch/job.py", "batch/scoring.py", "model/infer.py", "handler/codec.py"} <= names
        assert z.read("handler/codec.py") == mar.read("handler/codec.py")
        assert z.read("model/text.py") == mar.read("model/text.py")


def test_the_archive_is_unpacked_once_per_content_into_a_directory_named_by_its_hash(mar_path, tmp_path):
    unpacked = mar_files.unpack(mar_path)
    assert unpacked == mar_files.unpack(mar_path) and unpacked.name == f"sentiment-mar-{mar_files.digest(mar_path)}"
    assert (unpacked / "MAR-INF" / "MANIFEST.json").exists()
    copy = tmp_path / "copy.mar"  # the same content elsewhere: the same directory
    copy.write_bytes(mar_path.read_bytes())
    assert mar_files.unpack(copy) == unpacked


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.jsonl", "jsonl"), ("a.jsonl.gz", "jsonl"), ("a.json", "jsonl"), ("a.csv", "csv"), ("dir.parquet", "parquet")],
)
def test_format_from_the_file_name(name, fmt):
    assert format_of(Path(name)) == fmt
    assert JobSettings(input=Path(name), output=Path("o")).format == fmt
    assert JobSettings(input=f"s3a://bucket/in/{name}/", output="s3a://bucket/out").format == fmt


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("file:///data/in.jsonl", "file:///data/in.jsonl"),
        ("hdfs://nn:8020/in/", "hdfs://nn:8020/in/"),
        ("s3a://bucket/x", "s3a://bucket/x"),
        ("/data/in.jsonl", "file:///data/in.jsonl"),
        ("in.jsonl", f"file://{Path.cwd() / 'in.jsonl'}"),
        ("sub/../in.jsonl", f"file://{Path.cwd() / 'in.jsonl'}"),
    ],
)
def test_locations_are_uris_and_a_path_without_scheme_is_local(location, expected):
    assert storage.uri(location) == expected
    assert storage.renames_atomically(location) == (not location.startswith("s3a"))
    assert (storage.local_path(location) is None) == location.startswith(("hdfs", "s3a"))
    assert storage.name(location) == expected.rstrip("/").rsplit("/", 1)[-1]


def test_unknown_format_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="--format"):
        format_of(Path("reviews.txt"))
    with pytest.raises(ValueError):
        JobSettings(input=Path("a.csv"), output=Path("o"), input_format="xml")


def _lines(*lines) -> pa.RecordBatch:
    data = [line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines]
    return pa.RecordBatch.from_arrays([pa.array(data, pa.binary())], names=["line"])


def test_jsonl_lines_yield_their_key_and_text_field(loaded):
    scorer, limits = loaded
    batch = _lines(
        {"key": 1, "text": BOOK_REVIEWS["positive"]},
        {"key": 2, "text": 42},
        {"key": 3},
        {"key": "4", "text": BOOK_REVIEWS["negative"]},  # a key of another type: kept, as its JSON text
        ["not", "an", "object"],
        b'{"key": 5, "text": "cut',
        b'{"key": 6, "text": "great \xff film"}',  # not UTF-8: refused as online, the key kept
        {"key": [7], "text": BOOK_REVIEWS["positive"]},  # an invalid key (online too): kept, the row refused
    )
    layout = Layout("key", "json", text_fields=text_fields("text"))
    out = score_batch(scorer, limits, batch, layout, batch_size=2).to_pydict()
    assert list(out) == ["key", *COLUMNS]
    assert out["key"] == ["1", "2", "3", '"4"', None, None, "6", "[7]"]
    assert out["error"] == [
        None,
        "invalid_text",
        "missing_text",
        None,
        "invalid_request",
        "invalid_json",
        "invalid_utf8",
        "invalid_key",
    ]
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
    out = score_batch(scorer, limits, _lines(), Layout("key", "string", text_fields=("text",)), batch_size=256)
    assert out.num_rows == 0 and out.schema.names == ["key", *COLUMNS]


def test_a_declared_key_type_types_the_column_and_a_key_that_does_not_fit_stops_the_batch(loaded):
    scorer, limits = loaded
    layout = Layout("key", "bigint", text_fields=("text",))
    out = score_batch(scorer, limits, _lines({"key": 1, "text": "Fine."}, {"text": "No key."}), layout, 256)
    assert out.column(0).type == pa.int64() and out.column(0).to_pylist() == [1, None]
    with pytest.raises(KeyTypeMismatch, match='the key "x1" does not fit --key-type bigint'):
        score_batch(scorer, limits, _lines({"key": 1, "text": "Fine."}, {"key": "x1", "text": "Fine."}), layout, 256)


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (7, "json", "7"),
        (-(2**70), "json", str(-(2**70))),
        ("7", "json", '"7"'),
        ('a "quoted"\tkey\\', "json", '"a \\"quoted\\"\\tkey\\\\"'),  # escaped as json.dumps escapes
        (2.50, "json", "2.5"),
        (2**70, "json", str(2**70)),
        ({"a": "é"}, "json", '{"a": "é"}'),
        (True, "json", "true"),
        (float("nan"), "json", "NaN"),
        ("\udc00", "json", '"\\udc00"'),  # a lone surrogate stays an escape: UTF-8 cannot hold it
        (None, "json", None),
        (7, "bigint", 7),
        (7, "double", 7.0),
        (7.5, "double", 7.5),
        ("x", "string", "x"),
        (None, "bigint", None),
    ],
)
def test_a_key_comes_back_as_its_json_text_or_its_declared_type(value, kind, expected):
    assert typed_key(value, kind) == expected and type(typed_key(value, kind)) is type(expected)


@pytest.mark.parametrize(
    ("value", "kind"),
    [(7.5, "bigint"), ("7", "bigint"), (True, "bigint"), (2**63, "bigint"), (2**60 + 1, "double"), (7, "string")],
)
def test_a_key_that_does_not_fit_the_declared_type_is_refused_not_nulled(value, kind):
    with pytest.raises(KeyTypeMismatch, match=f"does not fit --key-type {kind}"):
        typed_key(value, kind)


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
