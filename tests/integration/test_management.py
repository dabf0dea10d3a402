"""The management API of a real TorchServe: scale under load, a second version, default, describe, unregister."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from serving.build.archive import build
from serving.client.api import ServingAPIError, ServingClient, attempt_deadline
from tests.conftest import BOOK_REVIEWS

logger = logging.getLogger(__name__)
SCALE_STEPS = (1, 2, 1, 2)  # from the fixture's 2 workers: 2 -> 1 -> 2 -> 1 -> 2
NORMAL_LATENCY = 1.0  # s: a single review on two busy cores while a new worker loads takes well under this


def test_scale_workers_under_load(server):
    """Two clients loop on predictions while the workers go 2 -> 1 -> 2 -> 1 -> 2. TorchServe 0.12 loses a job
    now and then when it scales a worker down (a 500, or no answer at all); the client asks again, so every
    request gets its 200, none later than its normal latency plus the client's deadline and back-off."""
    c = server.client
    clients = [ServingClient(c.inference_url, c.management_url, c.key_file) for _ in range(2)]
    body = BOOK_REVIEWS["positive"]
    bound = attempt_deadline(len(body.encode()), clients[0].deadline, clients[0].deadline_per_mb)
    bound += clients[0].retry_backoff + NORMAL_LATENCY
    answers: list[tuple[float, float, int]] = []  # (start, seconds, status)
    scale_downs: list[float] = []
    done = threading.Event()

    def traffic(client: ServingClient):
        while not done.is_set():
            started = time.monotonic()
            status = client.predict_raw(body, "text/plain").status_code
            answers.append((started, time.monotonic() - started, status))

    threads = [threading.Thread(target=traffic, args=(client,)) for client in clients]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        for workers in SCALE_STEPS:
            if workers == 1:
                scale_downs.append(time.monotonic())
            described = c.scale("sentiment", workers, workers)["workers"]
            assert len(described) == workers
            time.sleep(1.0)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=2 * c.timeout)
    assert not any(t.is_alive() for t in threads)
    statuses = [status for _, _, status in answers]
    retried = sum(client.retried for client in clients)
    slowest = max(seconds for _, seconds, _ in answers)
    around_scale_downs = [s for start, s, _ in answers if any(start - 0.1 < at < start + s for at in scale_downs)]
    logger.info(
        "scaling %s under two clients: %d requests, %d answered 200, %d retried (%d of them presumed lost), "
        "slowest %.3f s, slowest across a scale-down %.3f s",
        " -> ".join(map(str, (2, *SCALE_STEPS))),
        len(answers),
        statuses.count(200),
        retried,
        sum(client.presumed_lost for client in clients),
        slowest,
        max(around_scale_downs, default=0.0),
    )
    assert statuses.count(200) == len(statuses) > 20
    assert slowest < bound, f"a request took {slowest:.2f} s, over the {bound:.2f} s bound"
    assert retried <= len(clients) * len(scale_downs)  # at most each client's request in flight at each scale-down


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
