"""`make test` runs the tiers in order, unit first, so that a quick failure shows first."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from tests.conftest import ROOT, TIERS, pytest_collection_modifyitems


@dataclass
class Item:
    fspath: str
    markers: list[str] = field(default_factory=list)

    def add_marker(self, name: str) -> None:
        self.markers.append(name)


def test_tiers_run_unit_then_integration_then_the_spark_tiers_and_are_marked():
    # pytest collects folders alphabetically: batch, evaluation, integration, unit
    names = [
        "batch/test_a.py",
        "batch/test_b.py",
        "evaluation/test_a.py",
        "integration/test_a.py",
        "unit/test_a.py",
        "unit/test_b.py",
    ]
    items = [Item(str(ROOT / "tests" / name)) for name in names]
    pytest_collection_modifyitems(items)
    order = [names[4], names[5], names[3], names[0], names[1], names[2]]
    assert [i.fspath.split("/tests/")[1] for i in items] == order
    assert [i.markers for i in items] == [["unit"], ["unit"], ["integration"], ["batch"], ["batch"], ["evaluation"]]
    assert TIERS == ("unit", "integration", "batch", "evaluation")


MODULE = """from tests.conftest import requires

pytestmark = requires("the browser is missing")


def test_in_the_browser():
    pass
"""


@pytest.mark.parametrize(("ci", "outcome"), [("true", "error"), ("", "skipped")])
def test_a_missing_tool_fails_the_run_under_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    module = tmp_path / "test_needs_a_tool.py"
    module.write_text(MODULE)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(module), "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=120,
    )  # fmt: skip
    assert f"1 {outcome}" in done.stdout, done.stdout
    assert (done.returncode != 0) == (outcome == "error"), done.stdout
