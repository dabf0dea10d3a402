"""Fixtures shared by every tier, and the order of the tiers: unit first, so that a quick failure shows first."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# `make` run by a test as a user runs it: not as a sub-make of `make test`, whose MAKEFLAGS and MAKELEVEL would
# add "Entering directory" lines to its output
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
MAR = ROOT / "model_store" / "sentiment.mar"
BIGRAM_MAR = ROOT / "model_store" / "sentiment-bigram.mar"  # the phase-2 model (make archive-bigram)
EDGE_BUNDLE = ROOT / "dist" / "edge"  # the device bundle (make edge)
# Where CI runs the suite (GitHub Actions, GitLab and most others set CI=true): a missing tool fails the run there
CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
# tests/<tier>/: no server; a real TorchServe; a real Spark (batch, then the evaluation job)
TIERS = ("unit", "integration", "batch", "evaluation")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tiers in order (pytest collects folders alphabetically: batch, integration, unit) and mark each
    test with its tier, so that `-m unit` or `-m "not batch"` selects by folder."""

    def tier(item: pytest.Item) -> int:
        parts = Path(item.fspath).relative_to(ROOT / "tests").parts
        return TIERS.index(parts[0]) if parts[0] in TIERS else len(TIERS)

    for item in items:
        if tier(item) < len(TIERS):
            item.add_marker(TIERS[tier(item)])
    items.sort(key=tier)  # stable: each module's tests stay together, so module fixtures start once


# The prediction object's fields (a `key` is added when the request had one): the API's contract.
PREDICTION_FIELDS = {
    "positive_review_probability",
    "positive_review_logits",
    "label",
    "unknown_token_fraction",
    "out_of_vocabulary",
    "model_version",
}
BOOK_REVIEWS = {
    "positive": "The film is fast moving and has several great action scenes.",
    "neutral": "The film is based on a prize-winning novel.",
    "negative": "The film was very boring. I walked out half-way.",
}


def requires(missing: str | None) -> list[pytest.MarkDecorator]:
    """A module's `pytestmark` for the tool it needs (`missing`: why it cannot run, None when it can). On a
    developer's machine the module is skipped; under CI=true it fails at collection, so that a run without
    Chromium or nginx is red, never green with the browser or the fleet untested."""
    if missing is None:
        return []
    if CI:
        pytest.fail(f"{missing} (CI=true: a missing tool fails the run)", pytrace=False)
    return [pytest.mark.skip(reason=missing)]


@pytest.fixture(scope="session", autouse=True)
def temporary_directory(tmp_path_factory) -> Iterator[Path]:
    """TMPDIR for the whole run, under pytest's base directory (which pytest rotates), in this process and in every
    process the tests start: archives unpacked by their content, a browser's singleton socket, a killed run's
    files stay out of the machine's own temporary directory."""
    temp = tmp_path_factory.mktemp("tmp", numbered=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(temp))
        patch.setattr(tempfile, "tempdir", None)  # tempfile.gettempdir() reads TMPDIR again
        # a JVM ignores TMPDIR; Spark's (driver, and executors in local mode) leaves its directories behind when it
        # is killed outright, with no shutdown hook run
        java_temp = f"-Djava.io.tmpdir={temp}"
        patch.setenv("SPARK_SUBMIT_OPTS", " ".join(filter(None, (os.environ.get("SPARK_SUBMIT_OPTS"), java_temp))))
        yield temp


@pytest.fixture(scope="session")
def mar_path() -> Path:
    if not MAR.exists():
        pytest.fail(f"{MAR} is missing: run `make archive` (make test builds it)")
    return MAR


@pytest.fixture(scope="session")
def bigram_mar_path() -> Path:
    if not BIGRAM_MAR.exists():
        pytest.fail(f"{BIGRAM_MAR} is missing: run `make archive-bigram` (make test builds it)")
    return BIGRAM_MAR


@pytest.fixture(scope="session")
def edge_bundle() -> Path:
    if not (EDGE_BUNDLE / "settings.json").exists():
        pytest.fail(f"{EDGE_BUNDLE} is missing: run `make edge` (make test builds it)")
    return EDGE_BUNDLE


@pytest.fixture(scope="session")
def model_dir(mar_path: Path, tmp_path_factory) -> Path:
    """The .mar unpacked, as TorchServe unpacks it for a worker."""
    out = tmp_path_factory.mktemp("mar")
    with zipfile.ZipFile(mar_path) as archive:
        archive.extractall(out)
    return out
