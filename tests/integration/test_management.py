"""The management API of a real TorchServe: scale under load, a second version, default, describe, unregister."""

from __future__ import annotations

import threading
import time

import pytest

from serving.archive import build
from serving.client import ServingAPIError
from tests.conftest import BOOK_REVIEWS


def test_scale_workers_under_load(server):
    failures, successes = [], []
    done = threading.Event()

    def traffic():
        while not done.is_set():
            r = server.client.predict_raw(BOOK_REVIEWS["positive"], "text/plain")
            (successes if r.status_code == 200 else failures).append(r.status_code)

    threads = [threading.Thread(target=traffic) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for workers in (1, 2, 1):
            server.client.scale("sentiment", workers, workers)
            [model] = server.client.describe("sentiment")
            assert len(model["workers"]) == workers
            time.sleep(1.0)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert failures == [] and len(successes) > 10
    # TorchServe 0.12 drops the batch in flight on a worker it scales down; the client's retry absorbed it.
    assert server.client.retried <= 4


def test_second_version_default_and_unregister(server):
    build("sentiment", "2.0", server.model_store)  # the same model, archived as version 2.0: sentiment_2.0.mar
    registered = server.client.register("sentiment_2.0.mar", initial_workers=1)
    assert "sentiment" in registered["status"]

    versions = {m["modelVersion"]: m for m in server.client.describe("sentiment")}
    assert set(versions) == {"1.0", "2.0"}
    assert server.client.predict(BOOK_REVIEWS["positive"])["model_version"] == "1.0"
    assert (
        server.client.predict_raw(BOOK_REVIEWS["positive"], "text/plain", version="2.0").json()["model_version"]
        == "2.0"
    )

    server.client.set_default("sentiment", "2.0")
    assert server.client.predict(BOOK_REVIEWS["positive"])["model_version"] == "2.0"

    with pytest.raises(ServingAPIError):  # the default version cannot be unregistered while others exist
        server.client.unregister("sentiment", "2.0")
    server.client.set_default("sentiment", "1.0")
    server.client.unregister("sentiment", "2.0")
    assert {m["modelVersion"] for m in server.client.describe("sentiment")} == {"1.0"}
