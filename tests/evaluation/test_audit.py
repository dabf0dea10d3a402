"""The device model judged on audited reviews: the Spark job equals the plain-Python reference on audited phase-2
traffic, and the run's metrics hold the device's accuracy beside the server's on the same keys."""

from __future__ import annotations

from dataclasses import asdict

import pyarrow.parquet as pq
import pytest

from evaluation import job, pipeline, reference
from evaluation.settings import EvaluationSettings
from tests import synthetic

WINDOW = synthetic.WINDOW_S
DEVICE = reference.DEVICE_PREFIX + "1.0-int8"
AUDITED = reference.AUDITED_PREFIX + "1.0"


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("evaluation-audit")
    records = synthetic.audited_predictions()
    synthetic.write_captures(root / "captures", records)
    rows = synthetic.write_labels(root / "feedback", synthetic.label_rows(records))
    (root / "model_store").mkdir()  # sentiment-bigram ships no baseline: evaluated without drift
    return {"root": root, "records": records, "labels": rows}


def test_spark_equals_plain_python_on_audited_traffic(spark, audited):
    inputs = job.Inputs(audited["root"] / "captures", audited["root"] / "feedback")
    got = job.aggregate(spark, inputs, WINDOW, {})
    stats, counts = reference.evaluate(audited["records"], audited["labels"], WINDOW, {})
    assert sorted(v for _, _, v in got.stats) == sorted(v for _, _, v in stats) == ["1.0", AUDITED, DEVICE]
    assert {m for _, m, _ in got.stats} == {"sentiment-bigram"}  # the device's answers stand under the audited model
    for group, want in stats.items():
        have = asdict(got.stats[group])
        for name, value in asdict(want).items():
            assert synthetic.close(have[name], value), (group, name, have[name], value)
    for name in ("predictions", "retries", "labeled_keys", "unmatched_label_keys"):
        assert got.counts[name] == counts[name], name


def plain_accuracy(records: list[dict], labels: dict[str, int], probability) -> tuple[int, float]:
    """(labeled, accuracy) of the latest answer per audited key, `probability` reading it from a record."""
    latest: dict[str, dict] = {}
    for r in records:
        if r.get("audit") and (r["key"] not in latest or r["time"] > latest[r["key"]]["time"]):
            latest[r["key"]] = r
    answered = [(probability(r), labels[k]) for k, r in latest.items() if k in labels and probability(r) is not None]
    return len(answered), sum((p >= 0.5) == bool(y) for p, y in answered) / len(answered)


def test_the_run_reports_the_devices_accuracy_beside_the_servers(spark, audited, tmp_path):
    root = audited["root"]
    settings = EvaluationSettings(
        captures=root / "captures",
        feedback=root / "feedback",
        window_s=WINDOW,
        model_store=root / "model_store",
        model_name="sentiment-bigram",
        runs=tmp_path / "runs",
        master=None,
    )
    outcome = pipeline.run(spark, settings)
    table = {r["model_version"]: r for r in pq.read_table(outcome.run_dir / "metrics.parquet").to_pylist()}
    labels = reference.labels_of(audited["labels"]).latest
    assert all(labels[k] == synthetic.truth_of(k) for k in labels if k.startswith("k"))
    device = plain_accuracy(audited["records"], labels, lambda r: r["audit"]["phase1_probability"])
    server = plain_accuracy(audited["records"], labels, lambda r: r["positive_review_probability"])
    assert (table[DEVICE]["labeled"], table[AUDITED]["labeled"]) == (device[0], server[0]) and device[0] > 100
    assert table[DEVICE]["accuracy"] == pytest.approx(device[1], abs=1e-12)
    assert table[AUDITED]["accuracy"] == pytest.approx(server[1], abs=1e-12)
    assert table[DEVICE]["accuracy"] > table[AUDITED]["accuracy"]  # the synthetic device is the surer model here
