"""The audit marker of two-phase prediction: the codec's checks, the capture record holding both answers, and the
instance the cascade sends decoding to the device's own answer."""

from __future__ import annotations

import json
import math

import pytest

from batch.scoring import Layout, json_line
from edge.cascade import TwoPhaseClient
from handler import capture, settings
from handler.codec import Audit, Instance, Request, check_audit, decode
from handler.errors import ServingError
from tests.catalogue import JSON, LIMITS, audit
from tests.unit.test_capture import FakeScore
from tests.unit.test_cascade import FakeServer


@pytest.mark.parametrize(
    "value",
    [0.9, "x", [0.9], True, {}, audit(-0.01), audit(1.0000001), audit(math.inf), audit(math.nan), audit(10**400),
     audit(True), audit(None), audit("0.5"), audit(0.5, ""), audit(0.5, 1), audit(0.5, None), audit(0.5, "\ud800"),
     audit(0.5, "v" * (LIMITS.max_key_chars + 1))],
)  # fmt: skip
def test_a_malformed_audit_is_invalid_audit(value):
    with pytest.raises(ServingError) as err:
        check_audit(value, LIMITS)
    assert err.value.code == "invalid_audit" and err.value.status == 400


@pytest.mark.parametrize("p", [0, 0.0, 1, 0.5, 1e-300])
def test_a_valid_audit_is_the_devices_answer(p):
    got = check_audit({**audit(p, "v" * LIMITS.max_key_chars), "extra": [1]}, LIMITS)  # unknown fields ignored
    assert got == Audit(float(p), "v" * LIMITS.max_key_chars) and isinstance(got.phase1_probability, float)
    assert check_audit(None, LIMITS) is None


def test_the_audit_is_checked_after_the_key_and_the_text():
    body = {"text": "", "key": [1], "audit": 7}
    assert decode(json.dumps({"instances": [body]}), JSON, LIMITS).items[0].code == "invalid_key"
    body["key"] = "k"
    assert decode(json.dumps({"instances": [body]}), JSON, LIMITS).items[0].code == "empty_text"
    body["text"] = "Great film."
    assert decode(json.dumps({"instances": [body]}), JSON, LIMITS).items[0].code == "invalid_audit"


def test_a_batch_line_gets_the_online_error_for_its_audit():
    line = json.dumps({"id": "r1", "text": "Great film.", "audit": audit(2.0)}).encode()
    key, err = json_line(line, Layout("id", "string", text_fields=("text",)), LIMITS)
    online = decode(json.dumps({"instances": [json.loads(line)]}), JSON, LIMITS).items[0]
    assert key == "r1" and (err.code, err.message) == (online.code, online.message)


def test_the_capture_record_holds_the_devices_answer_beside_the_servers():
    request = decode(
        json.dumps({"instances": [
            {"text": "Great film.", "key": "r1", "audit": audit(0.93)},
            {"text": "Awful.", "key": "r2"},
        ]}),
        JSON,
        LIMITS,
    )  # fmt: skip
    failed = Request([Instance("Dull.", "r3", Audit(0.1, "1.0-int8"))], True)
    out = capture.items(
        [request, failed], [[FakeScore(2.0), FakeScore(-1.0)], ServingError("internal_error", "x")], ["q", "f"],
        settings.CaptureSettings(),
    )  # fmt: skip
    records = [capture.record(item, "sentiment-bigram", "1.0", 0.0, 1024) for item in out]
    assert records[0]["audit"] == {"phase1_probability": 0.93, "phase1_version": "1.0-int8"}
    assert records[0]["positive_review_logits"] == 2.0 and records[0]["key"] == "r1"
    assert "audit" not in records[1]
    assert records[2]["error"] == "internal_error" and records[2]["audit"]["phase1_probability"] == 0.1
    json.dumps(records, allow_nan=False)


def test_what_the_cascade_sends_decodes_to_the_devices_answer(edge_bundle):
    from edge.device import DeviceModel

    device = DeviceModel(edge_bundle)
    server = FakeServer()
    answers = TwoPhaseClient(device, server, confidence=0.5, audit_rate=1).predict(["Great film.", "Dull."], ["a", 2])
    [sent] = server.requests
    items = decode(json.dumps({"instances": sent}), JSON, device.settings.limits).items
    for item, answer in zip(items, answers, strict=True):
        assert item.audit == Audit(answer["positive_review_probability"], device.settings.model_version)
