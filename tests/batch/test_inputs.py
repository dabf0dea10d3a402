"""What the job reads, on a local Spark: every JSONL key comes back as it was written, a declared key type is
kept or the job stops, and batch and online answer every input of the bad-input catalogue alike."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from batch import sources
from batch.errors import UsageError
from batch.job import run
from batch.keys import json_text
from batch.settings import JobSettings
from batch.sources import KEY_SAMPLE
from handler.codec import decode
from handler.errors import ServingError
from tests.batch.conftest import write_jsonl
from tests.catalogue import CASES, JSON, LIMITS
from tests.conftest import BOOK_REVIEWS

TEXTS = list(BOOK_REVIEWS.values())
LATE_KEYS = ["late-1", 2.5, 2**64, -0.0, 1e300, True, {"shop": 7, "n": [1, 2]}, "é 🎬", "", 10, "10"]


def _read(spark, output) -> list[dict]:
    return [row.asDict() for row in spark.read.parquet(f"{output}/predictions.parquet").collect()]


@pytest.fixture(scope="module")
def mixed_keys(tmp_path_factory):
    """KEY_SAMPLE + 200 integer keys first, then keys of every other kind, and rows without a key."""
    tmp = tmp_path_factory.mktemp("keys")
    rows = [{"key": i, "text": TEXTS[i % 3]} for i in range(KEY_SAMPLE + 200)]
    rows += [{"key": key, "text": TEXTS[0]} for key in LATE_KEYS]
    rows += [{"key": None, "text": TEXTS[1]}, {"text": TEXTS[2]}]
    return write_jsonl(tmp / "reviews.jsonl", rows), rows


def test_every_key_comes_back_as_its_json_text_however_late_and_whatever_its_type(
    spark, mar_path, mixed_keys, tmp_path
):
    data, rows = mixed_keys
    summary = run(spark, JobSettings(input=data, output=tmp_path / "out", mar=mar_path, partitions=2))
    out = _read(spark, tmp_path / "out")
    assert summary.rows == len(rows) == len(out) and summary.rows_without_key == 2
    # write_jsonl writes json.dumps(row): each key's text in the file is json.dumps(key)
    expected = sorted(json.dumps(r["key"]) for r in rows if r.get("key") is not None)
    assert sorted(row["key"] for row in out if row["key"] is not None) == expected
    late = {row["key"]: row for row in out if row["key"] in {json.dumps(k) for k in LATE_KEYS}}
    assert set(late) == {json.dumps(k) for k in LATE_KEYS}
    assert json.loads(late[json_text(2**64)]["key"]) == 2**64 and late['"10"'] is not late["10"]
    refused = {"true", json.dumps(LATE_KEYS[6])}  # as online, a boolean or an object is no key: the row keeps it
    assert {key: row["error"] for key, row in late.items() if row["error"]} == dict.fromkeys(refused, "invalid_key")


# Keys as a client may write them, each of which json.loads then json.dumps would change
AS_SENT = ["1e400", "-1e400", "1.10", "1E+2", "-0", "-0.0", "12345678901234567890.5", '"\\u00e9t\\u00e9"', '"r\\/1"',
           '"tab\\tbed"', '"café"', "[1, 2.50]"]  # fmt: skip


def test_keys_come_back_byte_for_byte_as_sent(spark, mar_path, tmp_path):
    """The key column holds each line's own text of its key: `1e400` stays `1e400` (parsed, an infinite float
    that JSON cannot write), `1.10` stays `1.10`, an escape stays an escape; a refused row keeps its key too."""
    lines = [f'{{"text": "A fine film.", "key": {key}}}' for key in AS_SENT]
    lines += ['{"key": 1e400, "text": "   "}', '{"key" : 1.10 , "text": "fine \\"film\\"", "key": 2.50}']
    data = tmp_path / "sent.jsonl"
    data.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    run(spark, JobSettings(input=data, output=tmp_path / "out", mar=mar_path, jsonl=True))
    out = _read(spark, tmp_path / "out")
    assert sorted(row["key"] for row in out) == sorted([*AS_SENT, "1e400", "2.50"])  # the last of duplicates
    # as online, a key beyond a double's range (or an array) is refused: the row keeps the key as it was sent
    refused = {"1e400": "invalid_key", "-1e400": "invalid_key", "[1, 2.50]": "invalid_key"}
    assert {row["key"]: row["error"] for row in out if row["error"]} == refused
    assert sum(row["error"] is None for row in out) == len(AS_SENT) - 3 + 1
    written = [json.loads(line) for f in (tmp_path / "out/predictions.jsonl").glob("*.json") for line in f.open()]
    assert sorted(row["key"] for row in written) == sorted(row["key"] for row in out)


def test_a_declared_key_type_types_the_column_and_a_late_key_that_does_not_fit_stops_the_job(
    spark, mar_path, mixed_keys, tmp_path
):
    data, rows = mixed_keys
    ints = write_jsonl(tmp_path / "ints.jsonl", rows[:50])
    run(spark, JobSettings(input=ints, output=tmp_path / "typed", mar=mar_path, key_type="bigint", partitions=2))
    typed = spark.read.parquet(f"{tmp_path}/typed/predictions.parquet")
    assert typed.schema["key"].dataType.simpleString() == "bigint"
    assert sorted(row["key"] for row in typed.collect()) == list(range(50))

    with pytest.raises(UsageError, match=r"^the key \S.* does not fit --key-type bigint: declare another type"):
        run(spark, JobSettings(input=data, output=tmp_path / "typed", mar=mar_path, key_type="bigint", partitions=2))
    assert sorted(row["key"] for row in spark.read.parquet(f"{tmp_path}/typed/predictions.parquet").collect()) == list(
        range(50)
    ), "the previous output is kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ints.jsonl", "typed"]


def test_a_key_type_is_refused_for_csv_and_parquet(mar_path, tmp_path):
    settings = JobSettings(input=tmp_path / "in.csv", output=tmp_path / "out", mar=mar_path, key_type="string")
    (tmp_path / "in.csv").write_text("id,text\n1,fine\n")
    with pytest.raises(UsageError, match="--key-type is for JSONL input"):
        settings.check_paths()


def _online(body: bytes, content_type: str) -> list[tuple[str, str] | None]:
    """The handler's answer to a body, per instance: (code, message) of an error, None for a prediction."""
    try:
        request = decode(body, content_type, LIMITS)
    except ServingError as err:
        return [(err.code, err.message)]
    return [(i.code, i.message) if isinstance(i, ServingError) else None for i in request.items]


def _jsonl_catalogue() -> list[tuple[str, bytes, str | None]]:
    """(case, JSONL line, expected code) for every catalogue body a JSONL line can carry: a JSON body that is not
    an `instances` batch (blank bodies are not lines), and each object or string of an `instances` batch."""
    lines = []
    for case in CASES:
        if case.server_only or case.content_type != JSON or not case.body.strip():
            continue
        try:
            payload = json.loads(case.body)
        except (ValueError, RecursionError):
            payload = None
        if not (isinstance(payload, dict) and "instances" in payload):
            lines.append((case.name, case.body, case.code))
        elif isinstance(payload["instances"], list) and case.slots:
            for obj, code in zip(payload["instances"], case.slots, strict=True):
                if isinstance(obj, (dict, str)):
                    record = obj if isinstance(obj, dict) else {"text": obj}
                    lines.append((case.name, json.dumps(record).encode(), code))
    assert not any(b"\n" in line for _, line, _ in lines)
    return lines


def _text_catalogue() -> list[tuple[str, str, str | None]]:
    """(case, text value, expected code) for every text/plain body a CSV or Parquet text column can hold."""
    values = []
    for case in CASES:
        if case.server_only or case.content_type not in ("text/plain", None) or not case.body:
            continue
        try:
            values.append((case.name, case.body.decode("utf-8"), case.code))
        except UnicodeDecodeError:
            continue  # a Parquet string is UTF-8: an invalid body has no counterpart there
    return values


def test_batch_and_online_answer_the_whole_bad_input_catalogue_alike(spark, mar_path, tmp_path):
    lines = _jsonl_catalogue()
    assert len(lines) > 40
    data = tmp_path / "catalogue.jsonl"
    data.write_bytes(b"".join(line + b"\n" for _, line, _ in lines))
    # one task: the rows come back in the order of the lines, which identifies the key-less ones
    run(spark, JobSettings(input=data, output=tmp_path / "jsonl", mar=mar_path, key_column="key", partitions=1))
    out = _read(spark, tmp_path / "jsonl")
    assert len(out) == len(lines)
    for (name, line, code), row in zip(lines, out, strict=True):
        (online,) = _online(line, JSON)
        assert row["error"] == code == (online[0] if online else None), name
        assert row["error_message"] == (online[1] if online else None), name
        assert (row["label"] is None) == (code is not None), name
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if isinstance(record, dict) and record.get("key") is not None:
            assert row["key"] == json_text(record["key"]), name  # kept, even when the key was refused

    values = _text_catalogue()
    pd.DataFrame({"key": range(len(values)), "text": [v for _, v, _ in values]}).to_parquet(tmp_path / "t.parquet")
    run(spark, JobSettings(input=tmp_path / "t.parquet", output=tmp_path / "text", mar=mar_path))
    by_id = {row["key"]: row for row in _read(spark, tmp_path / "text")}
    for i, (name, value, code) in enumerate(values):
        (online,) = _online(value.encode("utf-8"), "text/plain")
        assert by_id[i]["error"] == code == (online[0] if online else None), name
        assert by_id[i]["error_message"] == (online[1] if online else None), name


@pytest.fixture
def split_size_restored(spark):
    yield
    spark.conf.unset("spark.sql.files.maxPartitionBytes")


def test_a_large_jsonl_file_is_read_in_even_splits_without_a_shuffle(spark, tmp_path, split_size_restored):
    """Enough splits for every slot (4 a slot) and a multiple of the slots, by the split size: equal tasks, no
    slot idle for a last one, and no shuffle to spread the file. A gzipped file cannot split: it is spread by a
    shuffle, as before."""
    line = json.dumps({"key": 0, "text": BOOK_REVIEWS["positive"]}) + "\n"
    plain = tmp_path / "big.jsonl"
    plain.write_text(line * (6_000_000 // len(line)))  # 6 MB: Spark's own split size makes 2 splits of it
    settings = JobSettings(input=plain, output=tmp_path / "out")
    source = sources.read_source(spark, settings)
    slots = spark.sparkContext.defaultParallelism
    splits = source.frame.rdd.getNumPartitions()
    assert splits >= 4 * slots and splits % slots == 0
    assert "Exchange" not in source.frame._jdf.queryExecution().executedPlan().toString()
    spark.conf.unset("spark.sql.files.maxPartitionBytes")

    packed = tmp_path / "big.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    source = sources.read_source(spark, JobSettings(input=packed, output=tmp_path / "out-gz"))
    assert source.frame.rdd.getNumPartitions() == 4 * slots
    assert "Exchange" in source.frame._jdf.queryExecution().executedPlan().toString()
    assert spark.conf.get("spark.sql.files.maxPartitionBytes", None) in (None, "134217728b", "128MB")
