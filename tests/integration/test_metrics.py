"""The metrics port of a real TorchServe serves the model's own timings, tokenize and forward (sampled batches)."""

from __future__ import annotations

import re
import time

import requests

from handler.sentiment_handler import TIMINGS_EVERY_S

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
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # workers report a sample of batches: at most one per TIMINGS_EVERY_S
        server.client.predict("The film was great.")
        after = scrape(server)
        if all(sample(after, f"{name}_count") > sample(before, f"{name}_count") for name in TIMINGS):
            break
        time.sleep(TIMINGS_EVERY_S)
    for name in TIMINGS:
        assert f"# TYPE {name} histogram" in after, f"{name} is not declared in metrics.yaml"
        assert sample(after, f"{name}_count") >= sample(before, f"{name}_count") + 1
        assert sample(after, f"{name}_sum") > sample(before, f"{name}_sum")
        assert re.search(rf'^{name}_bucket\{{[^}}]*le="\+Inf"', after, re.M)
