"""The data directory is one constant, overridable by SENTIMENT_DATA_DIR (what `make ... DATA_DIR=...` sets)."""

from __future__ import annotations

import os
import subprocess
import sys

from model.data import read_jsonl
from tests.conftest import MAKE_ENV, ROOT


def data_dir(env: dict[str, str]) -> str:
    code = "from model.data import DATA_DIR; print(DATA_DIR)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_default_is_beside_the_repository_and_the_variable_overrides_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SENTIMENT_DATA_DIR"}
    assert data_dir(env) == str(ROOT.parent / "shared" / "data")
    assert data_dir({**env, "SENTIMENT_DATA_DIR": str(tmp_path)}) == str(tmp_path)


def test_make_passes_data_dir_on(tmp_path):
    out = subprocess.run(
        ["make", "-s", "-n", "train", f"DATA_DIR={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=MAKE_ENV,
    )
    assert "model.train" in out.stdout
    printed = subprocess.run(
        ["make", "-s", "--eval", "show: ; @echo $$SENTIMENT_DATA_DIR", "show", f"DATA_DIR={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=MAKE_ENV,
    )
    assert printed.stdout.strip() == str(tmp_path)


def test_read_jsonl_skips_blank_lines_and_stops_at_the_limit(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert read_jsonl(path, limit=2) == [{"a": 1}, {"a": 2}]
