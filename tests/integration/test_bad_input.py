"""The bad-input catalogue against a real TorchServe: each request gets its own answer, the worker survives,
and good requests batched with bad ones are answered normally."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.run.server import stop
from tests.catalogue import CASES, GOOD, JSON, Case, check
from tests.integration.conftest import launch, model_config_with

NEGATIVE = "The film was very boring. I walked out half-way."


@pytest.fixture(scope="module")
def batching_server(mar_path, tmp_path_factory):
    """One worker that waits up to 50 ms to fill a batch of 32: concurrent requests surely share batches."""
    workdir = tmp_path_factory.mktemp("torchserve-bad-input")
    srv = launch(workdir, mar_path, model_config=model_config_with(minWorkers=1, maxWorkers=1, maxBatchDelay=50))
    yield srv
    stop(workdir)


def worker_pids(server) -> list[int]:
    [model] = server.client.describe("sentiment")
    assert all(w["status"] == "READY" for w in model["workers"])
    return sorted(w["pid"] for w in model["workers"])


@pytest.fixture(scope="module")
def first_pids(batching_server):
    return worker_pids(batching_server)


def answer(response) -> dict | None:
    if not response.content:
        return None
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_catalogue(batching_server, first_pids, case: Case):
    response = batching_server.client.predict_raw(case.body, case.content_type or "", retries=0)
    check(case, response.status_code, answer(response))
    assert worker_pids(batching_server) == first_pids  # the worker survived: same process


def test_duplicate_keys_are_answered_in_order(batching_server):
    [case] = [c for c in CASES if c.name.startswith("duplicate keys")]
    body = batching_server.client.predict_raw(case.body, case.content_type).json()
    assert [(p["key"], p["label"]) for p in body["predictions"]] == [("k", "positive"), ("k", "negative")]


def test_concurrent_mix_of_good_and_bad(batching_server, first_pids):
    """Every good request gets 200 with its own key and label; every bad one its own 4xx; same worker."""
    bad = [c for c in CASES if not c.server_only and c.status != 200 and len(c.body) < 100_000]
    client = batching_server.client

    def call(i: int):
        if i % 3 == 0:
            case = bad[(i // 3) % len(bad)]
            response = client.predict_raw(case.body, case.content_type or "")
            return i, case, response.status_code, answer(response)
        text = GOOD if i % 2 else NEGATIVE
        response = client.predict_raw(json.dumps({"text": text, "key": f"k{i}"}), JSON)
        return i, None, response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(3 * len(bad) * 2)))
    for i, case, status, body in results:
        if case is not None:
            check(case, status, body)
        else:
            assert status == 200 and body["key"] == f"k{i}"
            assert body["label"] == ("positive" if i % 2 else "negative")
    assert client.retried == 0
    assert worker_pids(batching_server) == first_pids
