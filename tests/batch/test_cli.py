"""`python -m batch` as `make batch` runs it: a user's mistake is one line and exit status 2, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch import mar as mar_files
from tests.batch.conftest import write_jsonl
from tests.conftest import BOOK_REVIEWS, ROOT


def _batch(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "batch", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _refusal(done: subprocess.CompletedProcess) -> str:
    """The one `error: ...` line a refused run ends with."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and done.stderr.rstrip().endswith(errors[0]), done.stderr[-3000:]
    return errors[0]


def _csv(path):
    path.write_text('id,review\n1,"A fine film."\n2,"Dull, and far too long."\n')
    return path


@pytest.mark.parametrize(
    ("make_input", "option", "said"),
    [
        (
            lambda tmp: write_jsonl(tmp / "in.jsonl", [{"key": 1, "review": "A fine film."}]),
            ["--text-column", "body"],
            "has the text field 'body' (--text-column)",
        ),
        (lambda tmp: _csv(tmp / "in.csv"), ["--key-column", "review_id", "--text-column", "review"], "no column"),
    ],
    ids=["jsonl-text-column", "csv-key-column"],
)
def test_a_wrong_column_is_said_in_one_line(mar_path, tmp_path, make_input, option, said):
    data = make_input(tmp_path)
    done = _batch("--input", str(data), "--output", str(tmp_path / "out"), "--mar", str(mar_path), *option)
    assert said in _refusal(done)
    assert not (tmp_path / "out").exists()


def test_a_missing_input_is_said_before_spark_starts(mar_path, tmp_path):
    done = _batch("--input", str(tmp_path / "nowhere.jsonl"), "--output", str(tmp_path / "out"), "--mar", str(mar_path))
    assert _refusal(done) == f"error: {tmp_path / 'nowhere.jsonl'} does not exist (--input)"
    assert "Spark" not in done.stderr


def _tree(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def test_relative_and_absolute_paths_and_file_uris_and_nothing_left_in_the_temporary_directory(mar_path, tmp_path):
    """Two runs with the temporary directory (Python's and Spark's) pointed at an empty one: the first leaves the
    archive unpacked once and the code zip, named by their content; the second, nothing new."""
    temp = tmp_path / "temp"
    temp.mkdir()
    rows = [{"key": i, "text": t} for i, t in enumerate([*BOOK_REVIEWS.values(), "", None] * 4)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    common = ["--mar", str(mar_path), "--master", "local[2]", "--conf", f"spark.local.dir={temp}"]

    first = _batch("--input", "in.jsonl", "--output", "out/relative", *common, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    digest = mar_files.digest(mar_path)
    left = _tree(temp)
    assert {name.split("/", 1)[0] for name in left} == {
        f"sentiment-mar-{digest}",
        mar_files.code_zip(mar_path, tmp_path).name,
    }, sorted(left)[:20]

    second = _batch(
        "--input", (tmp_path / "in.jsonl").as_uri(), "--output", str(tmp_path / "out" / "absolute"), *common, env=env
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert _tree(temp) == left, "the second run left something new in the temporary directory"

    def rows_of(name: str) -> list[dict]:
        table = pq.read_table(tmp_path / "out" / name / "predictions.parquet")
        return sorted(table.to_pylist(), key=lambda row: row["key"])

    assert rows_of("relative") == rows_of("absolute") and len(rows_of("relative")) == len(rows)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["absolute", "relative"]
