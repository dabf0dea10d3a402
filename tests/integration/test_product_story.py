"""The whole product as one story: what a user runs together, judged by what the clients received.

A real TorchServe serves both models (as `make serve` does). Keyed reviews go to `sentiment` directly, and the
same keys through the two-phase client, whose deferred and audited reviews reach `sentiment-bigram` under those
keys; a batch job (`python -m batch`) scores a backlog with string and integer keys; labels arrive late in two
files (JSONL and CSV), some for keys nobody predicted; then `make evaluate`. Every (model, version) row must hold
the accuracy and counts computed plainly from the answers the clients got (within 1e-9), and no row may mix two
models."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest

from edge.cascade import Server, TwoPhaseClient
from edge.device import DeviceModel
from evaluation import captures, demo, reference
from evaluation.keys import canonical
from tests.conftest import ROOT
from tests.integration.conftest import PHASE2, launch

N = 160  # online reviews; the backlog is as many again
WINDOW = "36500d"  # one window holds the whole story, even across midnight


@pytest.fixture(scope="module")
def both_models(mar_path, bigram_mar_path, tmp_path_factory):
    srv = launch(tmp_path_factory.mktemp("torchserve-story"), mar_path, models={PHASE2: bigram_mar_path})
    yield srv
    srv.stop()


def right(probability: float, label: int) -> bool:
    """The evaluation's rule for a correct answer: positive when the probability is at least one half."""
    return (probability >= 0.5) == bool(label)


def test_each_model_row_equals_what_its_clients_received(both_models, edge_bundle, tmp_path):
    reviews = demo.in_domain(2 * N)
    online, backlog = reviews[:N], reviews[N:]
    for i, r in enumerate(online):  # string and integer keys online
        r["key"] = f"r-{i}" if i % 2 else i
    for i, r in enumerate(backlog):  # and in the backlog, never the online ones
        r["key"] = f"b-{i}" if i % 2 else 10**12 + i
    truth = {canonical(r["key"]): r["label"] for r in reviews}

    # sentiment, directly: one keyed request per 32 reviews
    sentiment: dict[str, float] = {}
    for start in range(0, N, 32):
        chunk = online[start : start + 32]
        answers = both_models.client.predict_many([{"key": r["key"], "text": r["text"]} for r in chunk])
        for r, a in zip(chunk, answers, strict=True):
            assert a["key"] == r["key"] and a["model_version"] == "1.0"
            sentiment[canonical(r["key"])] = a["positive_review_probability"]

    # the same keys through the two-phase client: deferred ones answered by sentiment-bigram, a share audited
    phase2 = Server(both_models.properties["inference_address"], PHASE2, both_models.token, 10.0)
    client = TwoPhaseClient(DeviceModel(edge_bundle), phase2, audit_rate=0.5, seed=3)
    answers = client.predict([r["text"] for r in online], [r["key"] for r in online])
    bigram: dict[str, float] = {}  # every answer sentiment-bigram gave, deferred or audited
    device: dict[str, float] = {}  # the device's answer to each audited review
    for r, a in zip(online, answers, strict=True):
        key = canonical(r["key"])
        if a["phase"] == 2:
            bigram[key] = a["positive_review_probability"]
        elif "audit" in a:
            bigram[key] = a["audit"]["phase2_probability"]
            device[key] = a["positive_review_probability"]
    audited = set(device)
    assert len(bigram) > len(audited) > 10  # both kinds reached the server

    # a batch job over the backlog: the answers are the output's rows
    backlog_file = tmp_path / "backlog.jsonl"
    backlog_file.write_text("".join(json.dumps({"key": r["key"], "text": r["text"]}) + "\n" for r in backlog))
    output = tmp_path / "batch-out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "batch", "--input", str(backlog_file), "--output", str(output), "--mar",
                    str(both_models.model_store / "sentiment.mar"), "--key-column", "key", "--partitions", "2"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)  # fmt: skip
    for row in pq.read_table(output / "predictions.parquet").to_pylist():
        key = canonical(json.loads(row["key"]))  # --key-type json: each key's JSON text
        sentiment[key] = row["positive_review_probability"]
    assert len(sentiment) == 2 * N

    # labels arrive late, in two files: JSONL for the even reviews, CSV for the odd, plus keys nobody predicted
    feedback = tmp_path / "feedback"
    feedback.mkdir()
    with open(feedback / "late.jsonl", "w") as f:
        for r in reviews[0::2]:
            f.write(json.dumps({"key": r["key"], "label": r["label"]}) + "\n")
        f.write(json.dumps({"key": "never-sent", "label": 1}) + "\n")
    with open(feedback / "later.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "label", "labeled_at"])
        for r in reviews[1::2]:
            writer.writerow([r["key"], ["negative", "positive"][r["label"]], "2030-01-01T00:00:00Z"])
        writer.writerow([424242, "positive", ""])

    time.sleep(0.3)  # the capture writers' last batch
    runs = tmp_path / "runs"
    args = (f"--captures {both_models.workdir / 'captures'} --batch-output {output} "
            f"--model-store {both_models.model_store} --runs {runs}")  # fmt: skip
    done = subprocess.run(["make", "--no-print-directory", "evaluate", f"FEEDBACK={feedback}", f"WINDOW={WINDOW}",
                           f"EVALUATE_ARGS={args}"], cwd=ROOT, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = done.stderr[done.stderr.index("evaluation run ") :]  # the end-of-run screen: a line per model version
    assert all(f"{name:<18} {v:<16}" in summary for name, v in [("sentiment", "1.0"), (PHASE2, "1.0")]), summary

    # the only other traffic: the launcher's unkeyed readiness predictions, one per model at most
    captured = captures.read(both_models.workdir / "captures").records
    probes = Counter((r["model_name"], r["model_version"]) for r in captured if r["key"] is None)
    assert all(n <= 2 for n in probes.values()), probes
    table = pq.read_table(runs / "latest" / "metrics.parquet").to_pylist()
    rows = {(r["model_name"], r["model_version"]): r for r in table}
    version = next(v for (m, v) in rows if v.startswith(reference.DEVICE_PREFIX))
    expected = {
        ("sentiment", "1.0"): sentiment,
        (PHASE2, "1.0"): bigram,
        (PHASE2, reference.AUDITED_PREFIX + "1.0"): {k: bigram[k] for k in audited},
        (PHASE2, version): device,
    }
    assert len(table) == len(rows) == len(expected) and set(rows) == set(expected)  # one row each, none mixed
    for model, answered in expected.items():
        row = rows[model]
        correct = sum(right(p, truth[k]) for k, p in answered.items())
        assert (row["keyed"], row["labeled"], row["errors"]) == (len(answered), len(answered), 0), model
        assert row["predictions"] - row["keyed"] == probes.get(model, 0), model  # the launcher's readiness checks
        assert row["accuracy"] == pytest.approx(correct / len(answered), abs=1e-9), model
    report = json.loads((runs / "latest" / "report.json").read_text())
    assert report["inputs"]["unmatched_label_keys"] == 2 and report["inputs"]["labeled_keys"] == 2 * N + 2
    assert report["inputs"]["retries"] == 0  # a key answered by two models is two predictions, not a retry
    assert report["models"]["sentiment-bigram 1.0"]["baseline"] is not None  # its own archive's, not sentiment's
