"""README's two-phase table, bundle size and batch rate are read off bench/results: each figure it quotes is
checked against the results file it names, so a re-run benchmark cannot leave README quoting the previous one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


@pytest.fixture(scope="module")
def readme() -> str:
    return (ROOT / "README.md").read_text()


def table_row(readme: str, starts: str) -> str:
    [row] = [line for line in readme.splitlines() if line.startswith(starts)]
    return row


def quoted(point: dict) -> str:
    """An accuracy as README's table writes it: 0.9162 [0.9093, 0.9232] (21.2 %)."""
    low, high = point["accuracy_95"]
    return f"{point['accuracy']:.4f} [{low:.4f}, {high:.4f}] ({point['deferred'] * 100:.1f} %)"


def test_the_two_phase_table_is_the_committed_report(readme):
    report = json.loads((RESULTS / "two_phase.json").read_text())
    imdb, sst2 = (next(s for s in report["splits"] if s["split"] == name) for name in ("imdb_validation", "sst2_dev"))
    phase1 = table_row(readme, "| phase 1 alone")
    assert f"fp32: {imdb['phase1_fp32_accuracy']:.4f} and {sst2['phase1_fp32_accuracy']:.4f}" in phase1
    assert f"| {imdb['phase1_int8_accuracy']:.4f} (0 %) | {sst2['phase1_int8_accuracy']:.4f} (0 %) |" in phase1
    phase2 = table_row(readme, "| phase 2 alone")
    assert f"| {imdb['phase2_accuracy']:.4f} (100 %) | {sst2['phase2_accuracy']:.4f} (100 %) |" in phase2
    cascade = table_row(readme, "| the cascade at the shipped threshold").replace("**", "")  # bold is emphasis
    assert f"threshold {imdb['shipped']['threshold']:.3f}" in cascade
    for split in (imdb, sst2):
        assert quoted(split["shipped"]) in cascade, split["split"]
    assert quoted(imdb["out_of_sample"]) in table_row(readme, "| the same rule out of sample")
    assert f"The bundle is {report['sizes']['bundle']['tar_gzip_bytes']:,} bytes as tar.gz" in readme


def test_the_batch_rate_is_the_committed_run(readme):
    batch = json.loads((RESULTS / "batch.json").read_text())
    assert f"scores {round(batch['job_rows_per_second']):,} reviews/s end to end" in readme
