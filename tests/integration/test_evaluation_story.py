"""The evaluation demo's story, small, against a real TorchServe: in-domain traffic then a shift, keyed and
captured; labels fed back; the evaluation (the plain-Python reference of the Spark job, to stay within a minute)
shows accuracy near validation first, drift and a critical drop on the shift; the retrain gate refuses a
candidate that does not win, and the default version stays."""

from __future__ import annotations

import time

from evaluation import alerts, captures, demo, models, reference, report
from evaluation.feedback import read_rows
from evaluation.retrain import RetrainSettings, accuracy_of, decide

WINDOW = 4  # seconds: one per phase
N = 300


def test_drift_then_drop_then_alert_and_the_gate_refuses_a_non_winner(server, tmp_path):
    phases = {"in-domain": demo.in_domain(N), "shifted": demo.shifted(N)}
    starts = {}
    for name, rows in phases.items():
        starts[name] = demo.next_window(WINDOW)
        assert demo.send(server.client, rows) == N
    demo.next_window(WINDOW)
    time.sleep(0.3)  # the capture writers' last batch
    for name, rows in phases.items():
        demo.feed(tmp_path / "feedback", name, rows)

    known = models.load(server.model_store)
    stats, counts = reference.evaluate(
        captures.read(server.workdir / "captures").records, read_rows(tmp_path / "feedback"), WINDOW, known
    )
    baselines = {("sentiment", "1.0"): known[("sentiment", "1.0")].baseline}
    table = report.rows(stats, baselines, WINDOW, min_labels=100)
    row = {name: next(r for r in table if r["window_start"] == report.iso(start)) for name, start in starts.items()}
    base = baselines[("sentiment", "1.0")]
    assert counts["unmatched_label_keys"] == 0 and row["in-domain"]["labeled"] == row["shifted"]["labeled"] == N
    assert row["in-domain"]["accuracy_low"] <= base["accuracy"] <= row["in-domain"]["accuracy_high"] + 0.02
    assert row["in-domain"]["token_length_psi"] < 0.25  # the same kind of reviews as validation
    assert row["shifted"]["accuracy"] < row["in-domain"]["accuracy"] - 0.05
    assert row["shifted"]["token_length_psi"] > 1.0 and row["shifted"]["token_length_psi_p"] < 1e-6  # short texts
    assert row["shifted"]["estimated_accuracy"] < row["in-domain"]["estimated_accuracy"]  # visible before labels

    fired = alerts.evaluate(table, alerts.load(), baselines)
    shifted_alerts = {a.rule for a in fired if a.window_start == report.iso(starts["shifted"])}
    assert "accuracy_drop" in shifted_alerts and "token_length_psi" in shifted_alerts
    assert alerts.critical_active(fired)
    assert not any(a.window_start == report.iso(starts["in-domain"]) and a.level == "critical" for a in fired)

    texts = [r["text"] for r in phases["shifted"]]
    labels = [r["label"] for r in phases["shifted"]]
    right = accuracy_of(server.model_store / "sentiment.mar", texts, labels)
    promote, why, _, _ = decide(right, right, base["accuracy"], base["accuracy"], RetrainSettings())
    assert not promote and "does not win" in why
    assert server.client.default_version("sentiment") == "1.0"
