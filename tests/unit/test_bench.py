"""Smoke tests of the benchmark's own code paths, so that a change to the codec or the model API breaks them here
rather than minutes into `make bench`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from bench import ceiling, stacks
from bench.reviews import instance_bodies, load_reviews, single_bodies
from handler import settings
from model.infer import load_scorer


@pytest.fixture(scope="module")
def scorer(model_dir):
    return load_scorer(model_dir)


def test_ceiling_times_every_stage(scorer, model_dir):
    bodies = single_bodies(load_reviews(8))
    limits = settings.read().limits
    spent = ceiling.one_batch(scorer, bodies, limits)
    assert set(spent) == set(ceiling.STAGES) | {f"cpu_{s}" for s in ceiling.STAGES}
    assert all(spent[s] > 0 for s in ceiling.STAGES)
    for tokenize in (None, ceiling.baseline_tokenize(model_dir)):  # today's path, and the one it replaced
        cell = ceiling.measure_batch(scorer, bodies, 4, 0.05, *([tokenize] if tokenize else []))
        assert cell["items_per_s"] > 0 and sum(cell["split"].values()) == pytest.approx(1.0)


def test_peer_answers_as_the_handler_does(model_dir):
    """The FastAPI peer, started as `make bench` starts it (uvicorn on a free loopback port), over real HTTP."""
    server = stacks.start_peer(model_dir, workers=1, token="t")
    try:
        url = f"{server.base_url}/predictions/sentiment"
        auth = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        [body] = single_bodies(["The film was very boring. I walked out half-way."])
        ok = requests.post(url, data=body, headers=auth, timeout=10)
        assert ok.status_code == 200 and ok.json()["key"] == "r0" and ok.json()["label"] == "negative"
        [many] = instance_bodies(load_reviews(3), 3)
        answers = requests.post(url, data=many, headers=auth, timeout=10).json()["predictions"]
        assert [p["key"] for p in answers] == [0, 1, 2]
        bad = requests.post(url, data=b"{", headers=auth, timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
        refused = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert refused.status_code == 401
    finally:
        server.stop()


def test_litserve_peer_answers_as_the_handler_does(model_dir):
    """The LitServe peer, started as `make bench` starts it, batching requests sent at once, over real HTTP."""
    server = stacks.start_litserve(model_dir, workers=1, token="t")
    try:
        url = f"{server.base_url}/predictions/sentiment"
        auth = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        bodies = single_bodies(["The film was very boring. I walked out half-way.", "A wonderful, moving film."] * 4)
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda b: requests.post(url, data=b, headers=auth, timeout=30), bodies))
        assert [a.status_code for a in answers] == [200] * 8
        assert [a.json()["label"] for a in answers[:2]] == ["negative", "positive"]
        assert [a.json()["key"] for a in answers] == [f"r{i}" for i in range(8)]
        [many] = instance_bodies(load_reviews(3), 3)
        predictions = requests.post(url, data=many, headers=auth, timeout=30).json()["predictions"]
        assert [p["key"] for p in predictions] == [0, 1, 2]
        empty = requests.post(url, data=b'{"text": ""}', headers=auth, timeout=30)
        assert empty.status_code == 400 and empty.json()["detail"]["error"]["code"] == "empty_text"
        refused = requests.post(url, data=bodies[0], headers={"Content-Type": "application/json"}, timeout=30)
        assert refused.status_code == 401
    finally:
        server.stop()


def test_frontend_variants_are_the_knobs_they_name(tmp_path):
    """`make bench-frontend`'s variants: the switch for the worker protocol, JVM flags beside the shipped log4j2
    setting, properties, a metrics.yaml without the dropped frontend metrics (TorchServe skips a metric it lacks)."""
    from bench import frontend
    from handler import wire

    env, overrides = frontend.settings_of("shipped", tmp_path)
    assert env == {wire.SWITCH: wire.TORCHSERVE} and overrides == {}
    env, overrides = frontend.settings_of("wire+serial-gc+netty-1+no-request-metrics", tmp_path)
    assert env == {wire.SWITCH: wire.BUFFERED}
    assert overrides["vmargs"].startswith("-Dlog4j.configurationFile=/") and overrides["vmargs"].endswith(
        "-XX:+UseSerialGC"
    )
    assert overrides["number_of_netty_threads"] == "1" and overrides["netty_client_threads"] == "1"
    kept = yaml.safe_load(Path(overrides["metrics_config"]).read_text())
    names = {m["name"] for metrics in kept["ts_metrics"].values() for m in metrics}
    assert not names & set(frontend.PER_REQUEST_LATENCY + frontend.PER_REQUEST_COUNTS)
    assert {"WorkerThreadTime", "TokenizeTime"} <= names | {
        m["name"] for ms in kept["model_metrics"].values() for m in ms
    }
    with pytest.raises(ValueError, match="unknown knobs"):
        frontend.knobs_of("wire+turbo")
    assert set(frontend.DEFAULT_VARIANTS) >= {"shipped", "wire"}


def test_wire_cost_times_both_readers_and_writers_on_the_same_batch():
    from bench import wire_cost

    result = wire_cost.measure(batch=4, rounds=1, batches=3)
    assert set(result["cpu_us_per_request"]) == {"read_torchserve", "read_wire", "write_torchserve", "write_wire"}
    assert result["message_bytes"] > 4 * len(wire_cost.HEADERS)
