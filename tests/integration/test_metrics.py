"""The metrics port of a real TorchServe serves the model's own timings, tokenize and forward, per batch."""

from __future__ import annotations

import re

import pytest
import requests

pytestmark = pytest.mark.integration
TIMINGS = ("TokenizeTime", "ForwardTime")


def scrape(server) -> str:
    response = requests.get(f"{server.metrics_url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def sample(text: str, series: str) -> float:
    """The value of `series` (e.g. TokenizeTime_count) for the sentiment model, 0 when absent."""
    match = re.search(rf'^{series}\{{[^}}]*ModelName="sentiment"[^}}]*\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_tokenize_and_forward_timings_are_prometheus_histograms(server):
    before = scrape(server)
    for i in range(3):
        server.client.predict(f"The film was great, take {i}.")
    after = scrape(server)
    for name in TIMINGS:
        assert f"# TYPE {name} histogram" in after, f"{name} is not declared in metrics.yaml"
        assert sample(after, f"{name}_count") >= sample(before, f"{name}_count") + 1  # one per server-side batch
        assert sample(after, f"{name}_sum") > sample(before, f"{name}_sum")
        assert re.search(rf'^{name}_bucket\{{[^}}]*le="\+Inf"', after, re.M)
