"""The retrain gate's decisions in plain Python: McNemar's test, the split by time, the rules, the labeled traffic."""

from __future__ import annotations

import json
import shutil

import pytest

from evaluation import retrain
from evaluation.retrain import RetrainSettings, decide, mcnemar, split_by_time
from handler.capture import Item, partition, record


def test_mcnemar_matches_known_values():
    assert mcnemar([True] * 10 + [False] * 5, [False] * 10 + [False] * 5) == (10, 0, pytest.approx(2 / 1024))
    only_a, only_b, p = mcnemar([True] * 30 + [False] * 10, [False] * 30 + [True] * 10)
    assert (only_a, only_b) == (30, 10) and p == pytest.approx(0.0022214, rel=1e-3)  # 2 P(Bin(40, 1/2) <= 10)
    assert mcnemar([True, False], [True, False])[2] == 1.0


def test_split_by_time_keeps_the_latest_share_for_the_comparison():
    rows = [{"t": t, "key": str(t)} for t in range(10)]
    earlier, latest = split_by_time(rows, 0.3)
    assert [r["t"] for r in earlier] == list(range(7)) and [r["t"] for r in latest] == [7, 8, 9]


def test_the_candidate_must_win_significantly_and_hold_on_validation():
    settings = RetrainSettings(min_holdout=10)
    serving = [True] * 60 + [False] * 40
    better = [True] * 60 + [True] * 30 + [False] * 10
    assert decide(serving, better, 0.89, 0.885, settings)[0]  # +30 on recent traffic, -0.5 points on validation
    assert not decide(serving, better, 0.89, 0.87, settings)[0]  # -2 points on validation: beyond the tolerance
    slightly = [True] * 60 + [True] * 3 + [False] * 37
    promote, why, holdout, _ = decide(serving, slightly, 0.89, 0.89, settings)
    assert not promote and "does not win" in why and holdout["only_candidate_right"] == 3
    assert not decide(serving[:5], better[:5], 0.89, 0.89, settings)[0]  # too few reviews to decide


def test_labeled_traffic_joins_captured_text_with_the_latest_label(tmp_path):
    captures, feedback = tmp_path / "captures", tmp_path / "feedback"
    for i, (key, text, when) in enumerate([("a", "good", 100.0), ("b", "bad", 200.0), ("a", "good!", 300.0),
                                           ("c", "meh", 50.0), (None, "no key", 60.0), ("d", None, 70.0)]):  # fmt: skip
        rec = record(Item(f"r{i}:0", key, 4, 1.0, 2, 0, None, text), "sentiment", "1.0", when, 1024)
        path = partition(captures, "sentiment", "1.0", when) / "h-1.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
    feedback.mkdir()
    lines = [{"key": "a", "label": "positive"}, {"key": "b", "label": 0}, {"key": "d", "label": 1}]
    (feedback / "labels.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    rows = retrain.labeled_traffic(RetrainSettings(captures=captures, feedback=feedback))
    assert [(r["key"], r["text"], r["label"]) for r in rows] == [("b", "bad", 0), ("a", "good!", 1)]


def test_next_version_follows_the_archives_in_the_store(tmp_path, mar_path):
    assert retrain.next_version(tmp_path) == "1.0"
    shutil.copy2(mar_path, tmp_path / "sentiment.mar")
    assert retrain.next_version(tmp_path) == "2.0"


def test_a_candidate_is_rebased_on_the_traffic_it_was_chosen_for(tmp_path):
    """The archive of a retrained version ships a baseline and calibration of the comparison window's reviews,
    not of the validation split (whose baseline the exported model came with)."""
    from model.baseline import ARTIFACTS, BASELINE_FILE
    from model.infer import load_scorer, score

    artifacts = tmp_path / "artifacts"
    shutil.copytree(ARTIFACTS, artifacts)
    shipped = json.loads((artifacts / BASELINE_FILE).read_text())
    rows = [{"text": t, "label": y} for t, y in (("a short phrase", 1), ("dull and flat", 0), ("great fun", 1))] * 40
    baseline = retrain.rebase(artifacts, rows)
    assert json.loads((artifacts / BASELINE_FILE).read_text()) == baseline
    assert baseline["n"] == len(rows) != shipped["n"]
    assert baseline["token_edges"] != shipped["token_edges"]  # three-word texts, not reviews
    right = [
        (s.logit >= 0) == bool(r["label"])
        for s, r in zip(score(load_scorer(artifacts), [r["text"] for r in rows]), rows, strict=True)
    ]
    assert baseline["accuracy"] == pytest.approx(sum(right) / len(rows))
