"""Versions without a server: the archive's file name for a version (Python and Makefile agree), and the words the
client prints for promote, rollback and unregister."""

from __future__ import annotations

import subprocess

import pytest

from serving.build.archive import DEFAULT_VERSION, archive_name
from serving.client.api import Promotion, Removal, version_key
from serving.client.cli import promoted_line, removed_line, rolled_back_line
from tests.conftest import MAKE_ENV, ROOT


def test_a_new_version_is_named_beside_the_served_archive():
    assert archive_name("sentiment", DEFAULT_VERSION) == "sentiment.mar"
    assert archive_name("sentiment", "2.0") == "sentiment_2.0.mar"


def _archive_prerequisite(*make_args: str) -> str:
    """The file `make archive` stands for, from make's database (-q: nothing is run)."""
    out = subprocess.run(
        ["make", "-pq", "archive", *make_args], cwd=ROOT, capture_output=True, text=True, env=MAKE_ENV
    ).stdout
    [line] = [line for line in out.splitlines() if line.startswith("archive:")]
    return line.split(":", 1)[1].strip()


def _dry_run(target: str, *make_args: str) -> list[str]:
    """What `make <target>` would run if serving/build/archive.py had changed (-n: nothing is run)."""
    done = subprocess.run(
        ["make", "-n", "-W", "serving/build/archive.py", target, *make_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=MAKE_ENV,
    )
    return done.stdout.splitlines()


def _archive_recipe(*make_args: str, target: str = "archive") -> str:
    """sentiment's archive recipe (`make serve` builds sentiment-bigram's as well)."""
    [line] = [
        line for line in _dry_run(target, *make_args) if "-m serving.build.archive" in line and "--name" not in line
    ]
    return line


@pytest.mark.parametrize("version", ["2.0", "1.5"])
def test_make_archive_with_a_version_targets_its_own_file(version):
    assert _archive_prerequisite(f"VERSION={version}") == f"model_store/{archive_name('sentiment', version)}"
    assert _archive_recipe(f"VERSION={version}").endswith(f"--version {version}")


def test_plain_make_archive_is_version_1_0_in_sentiment_mar():
    assert _archive_prerequisite() == "model_store/sentiment.mar"
    assert _archive_recipe().endswith(f"--version {DEFAULT_VERSION}")


@pytest.mark.parametrize("target", ["serve", "batch"])
def test_serve_and_batch_use_sentiment_mar_whatever_the_version(target):
    assert _archive_recipe("VERSION=2.0", "INPUT=in.jsonl", "OUTPUT=out", target=target).endswith("--version 1.0")
    assert not any("sentiment_2.0.mar" in line for line in _dry_run(target, "VERSION=2.0", "INPUT=in", "OUTPUT=o"))


def test_versions_sort_by_number():
    assert sorted(["10.0", "2.0", "9.1", "1.0"], key=version_key) == ["1.0", "2.0", "9.1", "10.0"]
    assert sorted(["1.0-rc1", "1.0"], key=version_key) == ["1.0", "1.0-rc1"]


def test_the_words_say_which_version_went_and_what_remains():
    assert promoted_line(Promotion("sentiment", "2.0", 1, "1.0")) == (
        "sentiment 2.0 registered with 1 worker and made the default; "
        "previous default 1.0 stays registered for `rollback`"
    )
    assert promoted_line(Promotion("sentiment", "1.0", 2, None)) == (
        "sentiment 1.0 registered with 2 workers and made the default"
    )
    assert rolled_back_line(Removal("sentiment", "2.0", "1.0", ("1.0",))) == (
        "sentiment 2.0 unregistered; the default is 1.0 again"
    )
    assert removed_line(Removal("sentiment", "3.0", "2.0", ("1.0", "2.0"))) == (
        "sentiment 3.0 unregistered; registered now: 1.0, 2.0, default 2.0"
    )
    assert removed_line(Removal("sentiment", "1.0", None, ())) == (
        "sentiment 1.0 unregistered; no version of sentiment remains"
    )
