"""`python -m batch` as `make batch` runs it: a user's mistake is one line and exit status 2, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.batch.conftest import write_jsonl
from tests.conftest import ROOT


def _batch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batch", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


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
            lambda tmp: write_jsonl(tmp / "in.jsonl", [{"id": 1, "review": "A fine film."}]),
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
