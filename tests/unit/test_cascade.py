"""Routing of the two-phase client, with a stand-in for the server: thresholds, keys, audit, offline, errors."""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
import urllib.error

import numpy as np
import pytest

from edge.__main__ import predict_file
from edge.cascade import Server, TwoPhaseClient, defers
from edge.device import DeviceModel
from model import calibration, threshold
from model.config import ARTIFACTS
from model.platt import CALIBRATION_FILE, Calibration
from tests.conftest import BOOK_REVIEWS

TEXTS = [
    *BOOK_REVIEWS.values(),
    "Not bad at all.",
    "ok",
    "An unforgettable, moving masterpiece.",
    "Dull, predictable and far too long.",
    "It was fine, I guess.",
]
KEYS = ["a", 2, 3.5, "a", "dup", "dup", "k" * 256, 0]  # duplicates and numbers: position identifies an answer


class FakeServer:
    """Answers like TorchServe's `instances` (probability 0.25 or 0.75 by a rule the device does not share)."""

    model = "sentiment-bigram"

    def __init__(self, fail: Exception | None = None, swap_keys: bool = False) -> None:
        self.fail = fail
        self.swap_keys = swap_keys
        self.requests: list[list[dict]] = []

    def predict(self, instances: list[dict]) -> list[dict]:
        self.requests.append(instances)
        if self.fail is not None:
            raise self.fail
        out = []
        for instance in instances:
            p = 0.75 if len(instance["text"]) % 2 else 0.25
            answer = {
                "positive_review_probability": p,
                "label": "positive" if p >= 0.5 else "negative",
                "model_version": "9.9",
            }
            out.append({"key": instance.get("key"), **answer} if "key" in instance else answer)
        if self.swap_keys and len(out) > 1:
            out[0]["key"], out[1]["key"] = out[1].get("key"), out[0].get("key")
        return out


@pytest.fixture(scope="module")
def device(edge_bundle):
    return DeviceModel(edge_bundle)


def test_confidence_half_never_defers(device):
    server = FakeServer()
    answers = TwoPhaseClient(device, server, confidence=0.5, audit_rate=0).predict(TEXTS, KEYS)
    assert server.requests == []
    assert [a["phase"] for a in answers] == [1] * len(TEXTS)
    assert [a["key"] for a in answers] == KEYS
    assert all(a["model_version"] == device.settings.model_version and not a["provisional"] for a in answers)


def test_confidence_one_always_defers_in_one_request_with_keys(device):
    server = FakeServer()
    answers = TwoPhaseClient(device, server, confidence=1, audit_rate=0).predict(TEXTS, KEYS)
    assert len(server.requests) == 1
    assert [i["key"] for i in server.requests[0]] == KEYS and [i["text"] for i in server.requests[0]] == TEXTS
    assert [a["phase"] for a in answers] == [2] * len(TEXTS)
    assert [a["key"] for a in answers] == KEYS
    assert all(a["model_version"] == "9.9" and not a["provisional"] for a in answers)


def test_the_shipped_threshold_defers_exactly_the_unsure(device):
    server = FakeServer()
    client = TwoPhaseClient(device, server, audit_rate=0)
    assert client.threshold == device.settings.threshold
    scores = device.score(TEXTS)
    unsure = [defers(s.confidence, client.threshold) for s in scores]
    assert 0 < sum(unsure) < len(TEXTS), "pick TEXTS so that the shipped threshold splits them"
    answers = client.predict(TEXTS, KEYS)
    assert [a["phase"] == 2 for a in answers] == unsure
    assert [i["key"] for i in server.requests[0]] == [k for k, u in zip(KEYS, unsure, strict=True) if u]
    assert [a["key"] for a in answers] == KEYS  # phase-1 and phase-2 answers back in input order
    for answer, score, u in zip(answers, scores, unsure, strict=True):
        if not u:
            assert answer["positive_review_probability"] == pytest.approx(calibration.sigmoid(score.logit))


def test_the_device_and_the_report_route_alike():
    confidences = np.array([0.5, 0.6, 0.8, 0.9999, 1.0])
    for cut in (0.5, 0.7, 0.8, 0.95, 1.0):
        assert [defers(c, cut) for c in confidences] == threshold.deferred(confidences, cut).tolist()


def test_calibrated_logit_is_the_served_models_calibration_of_the_raw_logit(device):
    """One calibration for the device, the server's estimate and the evaluation: calibration.json's."""
    [score] = device.score([TEXTS[0]])
    fitted = Calibration.load(ARTIFACTS / CALIBRATION_FILE)
    assert (device.settings.slope, device.settings.intercept) == (fitted.slope, fitted.intercept)
    assert score.logit == pytest.approx(fitted.slope * score.raw_logit + fitted.intercept)
    assert calibration.sigmoid(score.logit) == pytest.approx(fitted.probability(score.raw_logit))


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
        urllib.error.HTTPError("http://x", 503, "Service Unavailable", {}, None),
        urllib.error.HTTPError("http://x", 500, "Internal Server Error", {}, None),
        TimeoutError("timed out"),
        ValueError("the server's answer does not hold one prediction per instance"),
        http.client.IncompleteRead(b"{"),
    ],
)
def test_unreachable_phase_two_leaves_provisional_phase_one_answers(device, failure):
    answers = TwoPhaseClient(device, FakeServer(fail=failure), confidence=1, audit_rate=0).predict(TEXTS, KEYS)
    assert [(a["phase"], a["provisional"], a["key"]) for a in answers] == [(1, True, k) for k in KEYS]
    assert all(a["model_version"] == device.settings.model_version for a in answers)


def test_offline_every_review_is_answered(device):
    answers = TwoPhaseClient(device, None, audit_rate=1).predict(TEXTS, KEYS)
    assert [a["key"] for a in answers] == KEYS and all(a["phase"] == 1 for a in answers)
    unsure = [defers(s.confidence, device.settings.threshold) for s in device.score(TEXTS)]
    assert [a["provisional"] for a in answers] == unsure
    assert not any("audit" in a for a in answers)


def test_a_mismatched_key_from_the_server_is_not_trusted(device):
    answers = TwoPhaseClient(device, FakeServer(swap_keys=True), confidence=1, audit_rate=0).predict(TEXTS, KEYS)
    assert [(a["phase"], a["provisional"]) for a in answers[:2]] == [(1, True), (1, True)]
    assert all(a["phase"] == 2 for a in answers[2:])


def test_bad_instances_get_the_servers_errors_in_their_slots_and_are_never_sent(device):
    server = FakeServer()
    instances = [{"text": "Great film.", "key": "ok"}, {"text": "", "key": "empty"}, {"key": "none"}, 42, "Awful."]
    answers = TwoPhaseClient(device, server, confidence=1).predict_instances(instances)
    codes = [a.get("error", {}).get("code") for a in answers]
    assert codes == [None, "empty_text", "missing_text", "invalid_instance", None]
    assert [a.get("key") for a in answers] == ["ok", "empty", "none", None, None]
    assert [i["text"] for i in server.requests[0]] == ["Great film.", "Awful."]


def test_audited_answers_carry_both_and_the_server_gets_the_marker(device):
    server = FakeServer()
    answers = TwoPhaseClient(device, server, confidence=0.5, audit_rate=1).predict(TEXTS, KEYS)
    assert [a["phase"] for a in answers] == [1] * len(TEXTS)  # the device's answer stands
    [sent] = server.requests
    for instance, answer in zip(sent, answers, strict=True):
        assert instance["audit"] == {
            "phase1_probability": answer["positive_review_probability"],
            "phase1_version": device.settings.model_version,
        }
        assert answer["audit"]["phase2_version"] == "9.9"


def test_the_audit_rate_is_a_fraction_of_confident_answers(device):
    server = FakeServer()
    TwoPhaseClient(device, server, confidence=0.5, audit_rate=0.25, seed=7).predict(TEXTS * 50)
    audited = sum(len(r) for r in server.requests)
    assert 0.15 * 400 < audited < 0.35 * 400


def test_requests_hold_at_most_max_instances(device):
    server = FakeServer()
    n = device.settings.limits.max_instances + 3
    answers = TwoPhaseClient(device, server, confidence=1, audit_rate=0).predict(["Great film."] * n, list(range(n)))
    assert [len(r) for r in server.requests] == [n - 3, 3]
    assert [a["key"] for a in answers] == list(range(n))


def test_a_server_that_never_answers_times_out_into_provisional_answers(device):
    """A socket that accepts connections and never replies: the wait is bounded by the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        server = Server(f"http://127.0.0.1:{silent.getsockname()[1]}", "sentiment-bigram", None, timeout=0.5)
        started = time.monotonic()
        answers = TwoPhaseClient(device, server, confidence=1).predict(TEXTS[:2], ["x", "y"])
        assert time.monotonic() - started < 5
    assert [(a["phase"], a["provisional"]) for a in answers] == [(1, True), (1, True)]


def test_thresholds_outside_the_range_are_refused(device):
    for confidence in (0.4, 1.1):
        with pytest.raises(ValueError):
            TwoPhaseClient(device, confidence=confidence)


def test_the_cli_gives_keys_back_as_sent_and_errors_with_their_keys(device):
    """Offline (no server): every line answered by the device, a numeric key as the line wrote it, a refused
    line's error with its key."""
    lines = ['{"key": 1.10, "text": "A moving film."}', '{"key": "r-2", "text": "  "}', '{"key": -0, "text": "Dull."}']
    sink = io.BytesIO()
    counts = predict_file(TwoPhaseClient(device, None), io.StringIO("\n".join(lines) + "\n"), sink)
    out = sink.getvalue().splitlines()
    assert out[0].startswith(b'{"key":1.10,') and out[2].startswith(b'{"key":-0,')
    assert json.loads(out[1])["key"] == "r-2" and json.loads(out[1])["error"]["code"] == "empty_text"
    assert counts["lines"] == 3 and counts["errors"] == 1 and counts["without_key"] == 0
