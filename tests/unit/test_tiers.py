"""`make test` runs the tiers in order, unit first, so that a quick failure shows first."""

from __future__ import annotations

from dataclasses import dataclass, field

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
