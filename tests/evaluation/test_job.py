"""The evaluation job on Spark: equal to the plain-Python reference on synthetic traffic, its run directory and
exit status, late labels recomputing their windows, and the same run on the standalone cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, replace

import pyarrow.parquet as pq

from evaluation import alerts, job, models, pipeline, reference, report
from evaluation.settings import EvaluationSettings
from tests import synthetic
from tests.batch.test_cluster import _env, cluster  # noqa: F401 - the standalone cluster fixture
from tests.conftest import ROOT

WINDOW = synthetic.WINDOW_S


def settings(traffic, tmp_path, **changes) -> EvaluationSettings:
    base = EvaluationSettings(
        captures=traffic["root"] / "captures",
        feedback=traffic["root"] / "feedback",
        window_s=WINDOW,
        model_store=traffic["model_store"],
        runs=tmp_path / "runs",
        master=None,
    )
    return replace(base, **changes)


def expected(traffic):
    return reference.evaluate(traffic["records"], traffic["labels"], WINDOW, models.load(traffic["model_store"]))


def test_spark_equals_plain_python(spark, traffic):
    known = models.load(traffic["model_store"])
    got = job.aggregate(spark, job.Inputs(traffic["root"] / "captures", traffic["root"] / "feedback"), WINDOW, known)
    stats, counts = expected(traffic)
    assert sorted(got.stats) == sorted(stats) and len(stats) == 6  # 3 hours x 2 versions of sentiment
    for group, want in stats.items():
        have = asdict(got.stats[group])
        for name, value in asdict(want).items():
            assert synthetic.close(have[name], value), (group, name, have[name], value)
    assert got.counts["torn_lines"] == 1
    assert got.counts["bad_label_rows"] == {**counts["bad_label_rows"], "unreadable row": 1}  # the broken JSON line
    assert got.counts["label_rows"] == counts["label_rows"] + 1
    for name in ("predictions", "retries", "labeled_keys", "duplicate_label_keys", "conflicting_label_keys"):
        assert got.counts[name] == counts[name], name
    assert got.counts["unmatched_label_keys"] == counts["unmatched_label_keys"]


def test_the_run_directory_and_the_exit_status(spark, traffic, tmp_path):
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        "min_labels: 30\nmin_predictions: 30\nmax_p: 0.01\n"
        "rules:\n  accuracy_floor: {level: critical, metric: accuracy, floor: 0.99}\n"
    )
    batch = batch_output(tmp_path / "batch-out", keys=["k1", "k3", 5, "not-labeled"])
    outcome = pipeline.run(spark, settings(traffic, tmp_path, alerts=strict, batch_outputs=(batch,)))
    assert outcome.exit_status == pipeline.CRITICAL
    latest = tmp_path / "runs" / report.LATEST
    assert latest.is_symlink() and latest.resolve() == outcome.run_dir.resolve()
    files = {p.name for p in outcome.run_dir.iterdir()}
    assert files == {"metrics.parquet", "report.json", "alerts.json", "report.html"}
    table = pq.read_table(outcome.run_dir / "metrics.parquet").to_pylist()
    [from_batch] = [r for r in table if r["window_start"] >= report.iso(synthetic.START + 3 * WINDOW)]
    assert from_batch["predictions"] == 4 and from_batch["keyed"] == 4  # the batch job's run, in its own window
    labels = reference.labels_of(traffic["labels"]).latest
    assert from_batch["labeled"] == sum(1 for k in ("k1", "k3", "5") if k in labels)
    table = [r for r in table if r is not from_batch]
    assert len(table) == 6 and {r["model_version"] for r in table} == {"1.0", "2.0"}
    assert all(r["score_psi"] is None for r in table if r["model_version"] == "2.0")  # no archive: no baseline
    served = [r for r in table if r["model_version"] == "1.0"]
    assert all(r["score_psi"] is not None and r["estimated_accuracy"] is not None for r in served)
    fired = json.loads((outcome.run_dir / "alerts.json").read_text())
    assert fired and all(a["rule"] == "accuracy_floor" for a in fired) and any(a["active"] for a in fired)
    summary = json.loads((outcome.run_dir / "report.json").read_text())
    assert summary["run"]["exit_status"] == 3 and summary["inputs"]["torn_lines"] == 1
    assert summary["inputs"]["predictions"] == len(traffic["records"]) + 4
    assert "<img src='data:image/png;base64," in (outcome.run_dir / "report.html").read_text()

    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(strict.read_text().replace("0.99", "0.10"))
    known = models.load(traffic["model_store"])
    evaluated = [(m["model_name"], m["model_version"]) for m in summary["models"].values()]
    baselines = {m: known[m].baseline if m in known else None for m in evaluated}
    assert not alerts.critical_active(alerts.evaluate(table, alerts.load(lenient), baselines))  # exit status 0


def batch_output(directory, keys: list) -> object:
    """A batch job's output as batch.job writes it: predictions.parquet with the key column, and summary.json."""
    import pandas as pd

    directory.mkdir(parents=True)
    rows = [{"id": json.dumps(k), "positive_review_probability": 0.8, "positive_review_logits": 1.386,
             "label": "positive",
             "unknown_token_fraction": 0.0, "out_of_vocabulary": False, "model_version": "1.0", "error": None,
             "error_message": None} for k in keys]  # fmt: skip
    (directory / "predictions.parquet").mkdir()
    frame = pd.DataFrame(rows).astype({"error": "string", "error_message": "string"})  # as batch.scoring types them
    frame.to_parquet(directory / "predictions.parquet" / "part-0.parquet")
    summary = {"model_name": "sentiment", "key_column": "id", "key_type": "json"}  # --key-type json: JSON text
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory


def test_late_labels_recompute_only_their_windows(spark, traffic, tmp_path):
    first_hour = synthetic.START + WINDOW
    early_keys = {str(r["key"]) for r in traffic["records"] if r["key"] is not None and synthetic.parse(r) < first_hour}
    feedback = tmp_path / "feedback"
    feedback.mkdir()
    early = [r for r in synthetic.label_rows(traffic["records"]) if str(r["key"]) in early_keys]
    late = [r for r in synthetic.label_rows(traffic["records"]) if str(r["key"]) not in early_keys]
    known = models.load(traffic["model_store"])
    baselines = {("sentiment", "1.0"): known[("sentiment", "1.0")].baseline, ("sentiment", "2.0"): None}

    def table():
        got = job.aggregate(spark, job.Inputs(traffic["root"] / "captures", feedback), WINDOW, known)
        return report.rows(got.stats, baselines, WINDOW, 100)

    synthetic.write_labels(feedback / "early", early)
    before = table()
    synthetic.write_labels(feedback / "late", late)
    after = table()
    for old, new in zip(before, after, strict=True):
        if old["window_start"] == report.iso(synthetic.START):
            assert old == new  # its labels were all there: nothing changed
        else:
            assert old["labeled"] == 0 < new["labeled"]


def test_the_job_runs_on_the_standalone_cluster(cluster, traffic, tmp_path):  # noqa: F811 - the fixture
    done = subprocess.run(
        [sys.executable, "-m", "evaluation", "run", "--master", cluster, "--window", f"{WINDOW}s",
         "--captures", str(traffic["root"] / "captures"), "--feedback", str(traffic["root"] / "feedback"),
         "--model-store", str(traffic["model_store"]), "--runs", str(tmp_path / "runs"),
         "--conf", "spark.sql.shuffle.partitions=2"],  # 2 cores: fewer, larger tasks
        cwd=ROOT, env={**_env(), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode in (0, pipeline.CRITICAL), done.stderr[-3000:]
    table = pq.read_table(tmp_path / "runs" / report.LATEST / "metrics.parquet").to_pylist()
    stats, _ = expected(traffic)
    known = models.load(traffic["model_store"])
    want = report.rows(stats, {(n, v): known[(n, v)].baseline if (n, v) in known else None for _, n, v in stats},
                       WINDOW, 100)  # fmt: skip
    assert len(table) == len(want)
    for have, row in zip(table, want, strict=True):
        for name, value in row.items():
            assert synthetic.close(have[name], value) if isinstance(value, float) else have[name] == value, name
