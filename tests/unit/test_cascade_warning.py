"""The device's warning when phase 2 cannot answer says which reviews it costs: deferred answers that stand as
provisional, and audits that are not made (those change no answer)."""

from __future__ import annotations

import logging
import urllib.error

import pytest

from edge.cascade import TwoPhaseClient, defers
from edge.device import DeviceModel
from tests.unit.test_cascade import KEYS, TEXTS, FakeServer


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
        urllib.error.HTTPError("http://x", 503, "Service Unavailable", {}, None),
    ],
)
def test_the_warning_counts_provisional_answers_and_lost_audits_apart(edge_bundle, caplog, failure):
    device = DeviceModel(edge_bundle)
    deferred = sum(defers(s.confidence, device.settings.threshold) for s in device.score(TEXTS))
    assert 0 < deferred < len(TEXTS)  # both kinds in one request
    with caplog.at_level(logging.WARNING, logger="edge.cascade"):
        answers = TwoPhaseClient(device, FakeServer(fail=failure), audit_rate=1).predict(TEXTS, KEYS)
    assert sum(a["provisional"] for a in answers) == deferred
    said = f"{deferred} deferred answers stand as provisional, {len(TEXTS) - deferred} audits are not made"
    assert [r.getMessage().endswith(said) for r in caplog.records] == [True]
