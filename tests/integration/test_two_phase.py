"""The two-phase cascade against a real TorchServe serving sentiment-bigram: deferral, keys, audit (both answers
in the server's capture), the CLI end to end, the bad-input catalogue on phase 2, then a 5xx (no worker) and a
server stopped mid-run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from edge.cascade import Server, TwoPhaseClient
from edge.device import DeviceModel
from evaluation import captures
from tests.catalogue import CASES, check
from tests.conftest import ROOT
from tests.integration.conftest import PHASE2, all_workers_ready, launch_phase2_only
from tests.integration.test_capture import wait_for

KEYS = ["r1", 2, "r1", 4.5, "r5", "r6"]
TEXTS = [
    "The film is fast moving and has several great action scenes.",
    "The film was very boring. I walked out half-way.",
    "Not bad at all.",
    "ok",
    "An unforgettable, moving masterpiece.",
    "It was fine, I guess.",
]


@pytest.fixture(scope="module")
def server(mar_path, bigram_mar_path, tmp_path_factory):
    """TorchServe serving the phase-2 model only (the device is phase 1): one worker, started once."""
    workdir = tmp_path_factory.mktemp("torchserve-two-phase")
    srv = launch_phase2_only(workdir, mar_path, bigram_mar_path)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def device(edge_bundle):
    return DeviceModel(edge_bundle)


def phase2(server, timeout: float = 10.0) -> Server:
    return Server(server.properties["inference_address"], PHASE2, server.token, timeout)


def test_deferred_reviews_get_the_servers_answer_with_their_keys(server, device):
    answers = TwoPhaseClient(device, phase2(server), confidence=1, audit_rate=0).predict(TEXTS, KEYS)
    direct = server.client.predict_many([{"text": t, "key": k} for t, k in zip(TEXTS, KEYS, strict=True)], PHASE2)
    assert [a["key"] for a in answers] == KEYS
    assert all(a["phase"] == 2 and not a["provisional"] and a["model_version"] == "1.0" for a in answers)
    assert [a["positive_review_probability"] for a in answers] == [d["positive_review_probability"] for d in direct]


def test_the_shipped_threshold_mixes_both_phases_in_input_order(server, device):
    answers = TwoPhaseClient(device, phase2(server), audit_rate=0).predict(TEXTS, KEYS)
    assert [a["key"] for a in answers] == KEYS
    assert {a["phase"] for a in answers} == {1, 2} and not any(a["provisional"] for a in answers)


def test_audited_reviews_are_answered_by_the_device_and_scored_by_the_server(server, device):
    answers = TwoPhaseClient(device, phase2(server), confidence=0.5, audit_rate=1).predict(TEXTS, KEYS)
    assert all(a["phase"] == 1 and a["audit"]["phase2_version"] == "1.0" for a in answers)


def test_the_servers_capture_holds_both_answers_of_each_audited_review(server, device):
    keys = [f"audited-{i}" for i in range(len(TEXTS))]
    answers = TwoPhaseClient(device, phase2(server), confidence=0.5, audit_rate=1).predict(TEXTS, keys)
    assert all(a["phase"] == 1 and "audit" in a for a in answers)

    def captured() -> dict | None:
        found = {r["key"]: r for r in captures.read(server.workdir / "captures").records if r["key"] in keys}
        return found if len(found) == len(keys) else None

    found = wait_for(captured)
    for key, answer in zip(keys, answers, strict=True):
        record = found[key]
        assert record["model_name"] == PHASE2 and record["error"] is None
        assert record["audit"] == {  # the device's answer ...
            "phase1_probability": answer["positive_review_probability"],
            "phase1_version": device.settings.model_version,
        }
        assert record["positive_review_probability"] == answer["audit"]["phase2_probability"]  # ... and the server's
        assert record["model_version"] == answer["audit"]["phase2_version"]


@pytest.mark.parametrize("case", [c for c in CASES if not c.server_only], ids=lambda c: c.name)
def test_phase_two_answers_the_catalogue_as_sentiment_does(server, case):
    response = server.client.predict_raw(case.body, case.content_type or "", PHASE2)
    check(case, response.status_code, response.json())


def test_cli_end_to_end(server, tmp_path):
    lines = [json.dumps({"key": k, "text": t}) for k, t in zip(KEYS, TEXTS, strict=True)]
    lines[3:3] = ["", '{"key": "bad", "text": ""}', "not json"]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    key_file = server.workdir / "key_file.json"
    done = _cli(tmp_path, "--server", server.properties["inference_address"], "--key-file", str(key_file))
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [a.get("key") for a in answers] == [*KEYS[:3], "bad", None, *KEYS[3:]]  # blank line skipped
    assert [a["error"]["code"] for a in answers if "error" in a] == ["empty_text", "invalid_json"]
    assert {a["phase"] for a in answers if "error" not in a} == {1, 2}
    assert "8 answers" in done.stderr


def test_cli_reads_another_key_field_when_named_and_reports_lines_without_it(server, tmp_path):
    """The shared IMDB files key their lines `id`: read as they are, every answer would be keyed null, so the CLI
    says so; `--key-field id` gives each answer its line's key, and a line without one is still reported."""
    lines = [json.dumps({"id": k, "text": t}) for k, t in zip(KEYS, TEXTS, strict=True)] + [json.dumps(TEXTS[0])]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    args = ("--server", server.properties["inference_address"], "--key-file", str(server.workdir / "key_file.json"))
    done = _cli(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert f"warning: {len(lines)} of {len(lines)} lines have no key field 'key'" in done.stderr
    done = _cli(tmp_path, *args, "--key-field", "id")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [a.get("key") for a in answers] == [*KEYS, None]
    assert f"warning: 1 of {len(lines)} lines have no key field 'id'" in done.stderr


def test_no_worker_is_a_5xx_and_answers_stand_provisional(server, device):
    server.client.scale(PHASE2, 0, 0)
    try:
        started = time.monotonic()
        answers = TwoPhaseClient(device, phase2(server), confidence=1, audit_rate=0).predict(TEXTS, KEYS)
        assert time.monotonic() - started < 10
        assert [(a["phase"], a["provisional"], a["key"]) for a in answers] == [(1, True, k) for k in KEYS]
    finally:
        server.client.scale(PHASE2, 1, 1)
        all_workers_ready(server.client, PHASE2)


def test_a_server_stopped_mid_run(server, device, tmp_path):
    """The same client before and after the server stops: phase 2, then provisional phase-1 answers; the CLI
    still writes every line."""
    client = TwoPhaseClient(device, phase2(server, timeout=2.0), confidence=1, audit_rate=0)
    before = client.predict(TEXTS, KEYS)
    server.stop()
    after = client.predict(TEXTS, KEYS)
    assert all(a["phase"] == 2 for a in before)
    assert [(a["phase"], a["provisional"], a["key"]) for a in after] == [(1, True, k) for k in KEYS]
    lines = [json.dumps({"key": k, "text": t}) for k, t in zip(KEYS, TEXTS, strict=True)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    done = _cli(tmp_path, "--server", server.properties["inference_address"], "--confidence", "1")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(a["key"], a["provisional"]) for a in answers] == [(k, True) for k in KEYS]


def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge", "predict", "--input", str(tmp_path / "in.jsonl")]
        + ["--output", str(tmp_path / "out.jsonl"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
