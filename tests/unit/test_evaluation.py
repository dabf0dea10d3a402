"""Continued evaluation in plain Python: each metric against scikit-learn (or a brute-force formula where
scikit-learn has none), the intervals and tests against known values, the join rules, the alert rules."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from evaluation import alerts, feedback, metrics, reference
from evaluation.keys import canonical
from evaluation.metrics import Stats, finish, wilson
from evaluation.reference import ArchiveReference
from model.baseline import bin_of, build, fine_bin, quantile_edges, sigmoid
from model.ece import ECE_BINS
from model.platt import Calibration, fit
from tests import synthetic


def joined_pairs(n: int = 400, seed: int = 1) -> tuple[list[dict], list[dict], list[int], list[float]]:
    """One window, one version, unique keys: the records, their labels, and the (y, p) pairs they join into."""
    rng = random.Random(seed)
    records, label_rows, ys, ps = [], [], [], []
    for i in range(n):
        y = rng.random() < 0.45
        logit = round(rng.gauss(1.2 if y else -1.2, 1.5), 4) if i % 9 else 0.3  # ties for the AUC
        p = sigmoid(logit)
        records.append(
            {"prediction_id": f"r{i}:0", "key": f"k{i}", "model_version": "1.0", "time": "2026-01-01T00:10:00Z",
             "positive_review_probability": p, "positive_review_logits": logit, "tokens": 50 + i,
             "unknown_token_fraction": 0.01, "error": None}
        )  # fmt: skip
        if i % 10:  # 90 % labeled
            label_rows.append({"key": f"k{i}", "label": int(y), "labeled_at": None, "file": "f", "file_time": 0,
                               "row": i})  # fmt: skip
            ys.append(int(y))
            ps.append(p)
    return records, label_rows, ys, ps


def one_row(records, label_rows, model: ArchiveReference | None = None) -> tuple[dict, Stats]:
    stats, _ = reference.evaluate(
        records, label_rows, 3600, {("sentiment", "1.0"): model or ArchiveReference(None, None)}
    )
    [s] = stats.values()
    return finish(s, model.baseline if model else None, min_labels=10), s


def test_metrics_equal_scikit_learn():
    import sklearn.metrics as skm  # requirements-dev.txt
    from sklearn.calibration import calibration_curve

    records, label_rows, ys, ps = joined_pairs()
    row, _ = one_row(records, label_rows)
    predicted = [int(p >= 0.5) for p in ps]
    assert row["accuracy"] == pytest.approx(skm.accuracy_score(ys, predicted))
    assert row["precision"] == pytest.approx(skm.precision_score(ys, predicted))
    assert row["recall"] == pytest.approx(skm.recall_score(ys, predicted))
    assert row["f1"] == pytest.approx(skm.f1_score(ys, predicted))
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(ys, ps))
    assert row["log_loss"] == pytest.approx(skm.log_loss(ys, ps))
    assert row["brier"] == pytest.approx(skm.brier_score_loss(ys, ps))
    prob_true, prob_pred = calibration_curve(ys, ps, n_bins=ECE_BINS, strategy="uniform")
    counts = [c for c in _bin_counts(ps) if c]
    gaps = sum(c * abs(t - q) for c, t, q in zip(counts, prob_true, prob_pred, strict=True))
    assert row["ece"] == pytest.approx(gaps / len(ps))


def _bin_counts(ps: list[float]) -> list[int]:
    counts = [0] * ECE_BINS
    for p in ps:
        counts[fine_bin(p, ECE_BINS)] += 1
    return counts


def test_metrics_equal_brute_force():
    """The same metrics by their definitions, without scikit-learn: pairs for the AUC, sums for the rest."""
    records, label_rows, ys, ps = joined_pairs()
    row, _ = one_row(records, label_rows)
    pairs = [(p, q) for p, y in zip(ps, ys, strict=True) if y for q, z in zip(ps, ys, strict=True) if not z]
    assert row["roc_auc"] == pytest.approx(sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in pairs) / len(pairs))
    losses = [-math.log(p if y else 1 - p) for p, y in zip(ps, ys, strict=True)]
    assert row["log_loss"] == pytest.approx(sum(losses) / len(ps))
    assert row["brier"] == pytest.approx(sum((p - y) ** 2 for p, y in zip(ps, ys, strict=True)) / len(ps))
    tp = sum(1 for p, y in zip(ps, ys, strict=True) if p >= 0.5 and y)
    assert row["precision"] == pytest.approx(tp / sum(1 for p in ps if p >= 0.5))
    assert row["labeled"] == len(ys) and row["keyed"] == len(records) and row["label_coverage"] == pytest.approx(0.9)


def test_wilson_and_tests_match_known_values():
    low, high = wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0 and wilson(0, 0) == (None, None)
    assert metrics.chi2_sf(3.841459, 1) == pytest.approx(0.05, abs=1e-6)
    assert metrics.chi2_sf(18.307038, 10) == pytest.approx(0.05, abs=1e-6)
    assert metrics.chi2_sf(100.0, 9) < 1e-15
    assert metrics.ks_p_value(0.0, 100, 100) == 1.0
    assert metrics.ks_p_value(0.2, 1000, 1000) < 1e-15 < metrics.ks_p_value(0.05, 1000, 1000) < 0.2
    assert metrics.two_proportion_p_value(50, 100, 0.5, 1000) == pytest.approx(1.0)


def test_drift_needs_an_effect_and_significance_for_its_n():
    base = [0.1] * 10
    shifted = [3, 3, 3, 3, 3, 7, 7, 7, 7, 7]  # 50 reviews, shares 0.06 / 0.14: PSI ~0.17
    psi = metrics.psi(base, shifted)
    assert psi == pytest.approx(sum((a - 0.1) * math.log(a / 0.1) for a in [0.06] * 5 + [0.14] * 5))
    assert metrics.psi_p_value(base, shifted, 6250) > 0.1  # 50 reviews: a PSI of 0.17 is within noise
    assert metrics.psi_p_value(base, [s * 40 for s in shifted], 6250) < 1e-6  # 2,000: not noise
    assert metrics.psi(base, [100] * 10) == pytest.approx(0.0)


def test_a_window_with_few_labels_gets_no_verdict():
    records, label_rows, _, _ = joined_pairs(n=40)
    row, _ = one_row(records, label_rows)
    assert row["labeled"] == 36
    assert metrics.verdict(36, 100).startswith("no verdict: 36 labels < 100")
    assert finish(Stats(predictions=3), None, 100)["accuracy"] is None


def test_calibrated_estimate_uses_the_shipped_calibration():
    records, label_rows, ys, ps = joined_pairs()
    cal = Calibration(0.5, 0.2, 100)
    row, _ = one_row(records, label_rows, ArchiveReference(None, cal))
    logits = [r["positive_review_logits"] for r in records]
    expected = [cal.probability(x) if x >= 0 else 1 - cal.probability(x) for x in logits]
    assert row["estimated_accuracy"] == pytest.approx(sum(expected) / len(expected))


def test_calibration_fit_recovers_a_known_slope():
    rng = random.Random(0)
    logits = [rng.uniform(-6, 6) for _ in range(20000)]
    labels = [int(rng.random() < sigmoid(0.5 * x - 0.3)) for x in logits]
    cal = fit(logits, labels)
    assert cal.slope == pytest.approx(0.5, abs=0.03) and cal.intercept == pytest.approx(-0.3, abs=0.05)


def test_baseline_bins_are_shared_by_every_side():
    assert quantile_edges([float(i) for i in range(100)]) == [9.0, 19.0, 29.0, 39.0, 49.0, 59.0, 69.0, 79.0, 89.0]
    assert bin_of([0.1, 0.5], 0.1) == 1 and bin_of([0.1, 0.5], 0.05) == 0 and bin_of([0.1, 0.5], 0.9) == 2
    assert fine_bin(1.0) == 99 and fine_bin(0.0) == 0
    rng = random.Random(2)
    logits = [rng.gauss(0, 2) for _ in range(500)]
    tokens = [rng.randint(1, 900) for _ in logits]
    b = build(logits, tokens, [t // 10 for t in tokens], [int(x > 0) for x in logits], Calibration(1, 0, 500))
    assert sum(b["score_fractions"]) == pytest.approx(1) and len(b["score_fractions"]) == len(b["score_edges"]) + 1
    assert b["accuracy"] == 1.0 and sum(b["score_histogram"]) == pytest.approx(1)


def test_join_rules_latest_label_duplicates_conflicts_unknown_keys_and_retries():
    rec = {"model_version": "1.0", "positive_review_probability": 0.9, "positive_review_logits": 2.2, "tokens": 5,
           "unknown_token_fraction": 0.0, "error": None}  # fmt: skip
    records = [
        {
            **rec,
            "prediction_id": "a:0",
            "key": "k1",
            "time": "2026-01-01T00:00:01Z",
            "positive_review_logits": -1.0,
            "positive_review_probability": 0.27,
        },  # fmt: skip
        {**rec, "prediction_id": "b:0", "key": "k1", "time": "2026-01-01T00:00:09Z"},  # the retry: the one joined
        {**rec, "prediction_id": "c:0", "key": 7, "time": "2026-01-01T00:00:02Z"},
        {**rec, "prediction_id": "d:0", "key": "k9", "time": "2026-01-01T01:30:00Z", "model_version": "2.0"},
        {**rec, "prediction_id": "e:0", "key": None, "time": "2026-01-01T00:00:03Z"},
        {**rec, "prediction_id": "f:0", "key": "k2", "time": "2026-01-01T00:00:03Z", "error": "empty_text"},
    ]
    labels = [
        {"key": "k1", "label": "negative", "labeled_at": "2026-01-02T00:00:00Z", "file": "a", "file_time": 9, "row": 0},
        {"key": "k1", "label": "positive", "labeled_at": "2026-01-03T00:00:00Z", "file": "a", "file_time": 9, "row": 1},
        {"key": "7", "label": 1, "labeled_at": None, "file": "b", "file_time": 5, "row": 0},  # 7 and "7": one key
        {"key": "7", "label": 1, "labeled_at": None, "file": "c", "file_time": 5, "row": 0},
        {"key": "k9", "label": "pos", "labeled_at": None, "file": "b", "file_time": 5, "row": 1},
        {"key": "zz", "label": 0, "labeled_at": None, "file": "b", "file_time": 5, "row": 2},
        {"key": "", "label": 0, "labeled_at": None, "file": "b", "file_time": 5, "row": 3},
    ]
    stats, counts = reference.evaluate(records, labels, 3600, {})
    first = stats[(reference.window_of(feedback.parse_time("2026-01-01T00:00:00Z"), 3600), "sentiment", "1.0")]
    assert (first.predictions, first.errors, first.distinct_keys, first.labeled, first.tp) == (5, 1, 2, 2, 2)
    later = reference.window_of(feedback.parse_time("2026-01-01T01:00:00Z"), 3600)
    assert stats[(later, "sentiment", "2.0")].tp == 1
    assert counts["retries"] == 1 and counts["duplicate_label_keys"] == 2 and counts["conflicting_label_keys"] == 1
    assert counts["unmatched_label_keys"] == 1 and counts["bad_label_rows"] == {"missing key": 1}


def test_feedback_spellings_and_the_label_command(tmp_path):
    assert [feedback.parse_label(v) for v in (1, "0", " Positive ", "NEG", True, "1.0", "maybe", 2)] == [
        1, 0, 1, 0, 1, 1, None, None,
    ]  # fmt: skip
    assert feedback.parse_time("2026-01-01T00:00:00Z") == feedback.parse_time("2026-01-01 00:00:00") == 1767225600.0
    assert canonical(7) == canonical("7") == canonical(7.0) == "7" and canonical(7.5) == "7.5"
    from evaluation.cli import main

    assert main(["label", "k1", "positive", "--feedback", str(tmp_path)]) == 0
    assert main(["label", "k2", "meh", "--feedback", str(tmp_path)]) == 2
    [line] = (tmp_path / feedback.APPENDED).read_text().splitlines()
    assert '"key": "k1", "label": 1' in line


def test_alert_rules_need_a_verdict_and_persist_k_of_n():
    rules = alerts.load()
    base = {"accuracy": 0.9}
    row = {"model_name": "sentiment", "model_version": "1.0", "predictions": 1000, "errors": 0, "labeled": 500,
           "accuracy": 0.78,
           "accuracy_low": 0.74, "accuracy_high": 0.81, "error_rate": 0.0, "error_rate_low": 0.0,
           "error_rate_high": 0.004, "score_psi": 0.3, "score_psi_p": 1e-9}  # fmt: skip
    rows = [{**row, "window_start": f"2026-01-0{i}T00:00:00Z"} for i in range(1, 4)]
    rows[0].update(accuracy=0.9, accuracy_low=0.87, accuracy_high=0.92, score_psi=0.01)
    rows[2].update(labeled=20)  # too few labels: quality is not judged there, the previous verdict stands
    fired = alerts.evaluate(rows, rules, {("sentiment", "1.0"): base})
    by_rule = {}
    for a in fired:
        by_rule.setdefault(a.rule, []).append(a)
    [drop] = by_rule["accuracy_drop"]
    assert drop.window_start == rows[1]["window_start"] and drop.active and drop.level == "critical"
    assert "accuracy_floor" not in by_rule  # the upper bound 0.81 is not below the 0.80 floor
    assert [a.window_start for a in by_rule["score_psi_persistent"]] == [rows[2]["window_start"]]  # 2 of 3
    assert alerts.critical_active(fired)
    quiet = replace(rules, min_labels=1000)
    assert not alerts.critical_active(alerts.evaluate(rows, quiet, {("sentiment", "1.0"): base}))


def test_the_estimate_rule_compares_estimate_with_estimate_on_its_interval():
    rules = alerts.load()
    [rule] = [r for r in rules.rules if r.metric == "estimated_accuracy"]
    base = {"accuracy": 0.95, "estimated_accuracy": 0.90}
    row = {"model_name": "sentiment", "model_version": "1.0", "predictions": 1000, "errors": 0, "labeled": 0,
           "estimated_accuracy": 0.86, "estimated_accuracy_low": 0.84, "estimated_accuracy_high": 0.88}  # fmt: skip
    holds, _, threshold, _ = alerts.judge(rule, row, rules, base)
    assert not holds and threshold == pytest.approx(0.85)  # 4 points under the estimate: no drop of 5
    holds, *_ = alerts.judge(rule, {**row, "estimated_accuracy": 0.84, "estimated_accuracy_high": 0.86}, rules, base)
    assert holds  # 6 points under the baseline's own estimate, and the interval is under it too
    noisy = {**row, "estimated_accuracy": 0.84, "estimated_accuracy_high": 0.91}
    assert not alerts.judge(rule, noisy, rules, base)[0]  # an effect the interval cannot tell from noise


def test_two_models_answering_one_key_are_judged_each_never_a_retry():
    rec = {"model_version": "1.0", "positive_review_probability": 0.9, "positive_review_logits": 2.2, "tokens": 5,
           "unknown_token_fraction": 0.0, "error": None, "key": "r-1", "time": "2026-01-01T00:00:01Z"}  # fmt: skip
    records = [{**rec, "prediction_id": "a:0", "model_name": "sentiment"},
               {**rec, "prediction_id": "b:0", "model_name": "sentiment-bigram", "positive_review_logits": -1.0,
                "positive_review_probability": 0.27}]  # fmt: skip
    label = [{"key": "r-1", "label": 1, "labeled_at": None, "file": "a", "file_time": 1, "row": 0}]
    stats, counts = reference.evaluate(records, label, 3600, {})
    window = reference.window_of(feedback.parse_time("2026-01-01T00:00:00Z"), 3600)
    assert counts["retries"] == 0 and sorted(stats) == [
        (window, "sentiment", "1.0"),
        (window, "sentiment-bigram", "1.0"),
    ]
    assert (stats[(window, "sentiment", "1.0")].tp, stats[(window, "sentiment-bigram", "1.0")].fn) == (1, 1)


def test_platt_scaling_stays_finite_on_separable_data():
    logits = [float(x) for x in range(-25, 25) if x]  # 50 reviews, every one ranked right: the MLE slope is infinite
    labels = [int(x > 0) for x in logits]
    cal = fit(logits, labels)
    assert 0 < cal.slope < 5 and abs(cal.intercept) < 1 and cal.fitted_on == 49
    assert cal.probability(1.0) < 0.99  # one logit from the boundary is not a certainty
    with pytest.raises(ValueError):
        fit([1.0, 2.0], [1, 1])


def test_one_ece_definition():
    from model import baseline as baseline_module
    from model import calibration, ece

    assert not hasattr(calibration, "expected_calibration_error") and not hasattr(baseline_module, "ECE_BINS")
    rng = random.Random(5)
    probs = [rng.random() for _ in range(1000)]
    labels = [int(rng.random() < p) for p in probs]
    records, label_rows = [], []
    for i, (p, y) in enumerate(zip(probs, labels, strict=True)):
        logit = math.log(p / (1 - p))
        records.append({"prediction_id": f"r{i}:0", "key": f"k{i}", "model_version": "1.0",
                        "time": "2026-01-01T00:10:00Z",
                        "positive_review_probability": p, "positive_review_logits": logit, "tokens": 5,
                        "unknown_token_fraction": 0.0, "error": None})  # fmt: skip
        label_rows.append({"key": f"k{i}", "label": y, "labeled_at": None, "file": "f", "file_time": 1, "row": i})
    row, _ = one_row(records, label_rows)
    assert row["ece"] == pytest.approx(ece.expected_calibration_error(probs, labels), abs=1e-12)


def test_spark_free_reference_covers_the_synthetic_traffic():
    """The synthetic traffic the Spark tests use exercises every rule (so equality with Spark means something)."""
    records = synthetic.predictions()
    _, counts = reference.evaluate(records, [], 3600, {})
    assert counts["retries"] > 0 and any(r["error"] for r in records) and any(r["key"] is None for r in records)


def test_a_report_with_little_data_says_what_is_missing():
    from evaluation import report

    page = report.render_html({"run": {"started": "t", "window_seconds": 60, "exit_status": 0}}, [], [], {})
    assert "no alerts" in page
    assert set(report.plots([], {}, {}, {})) == {"accuracy", "scores", "reliability", "drift"}  # empty, not failing
