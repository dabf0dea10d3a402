"""Faults against a real TorchServe: a handler bug, a burst beyond the job queue, a worker killed with -9.

The archive is the shipped handler plus test-only triggers (faulty_handler.py); the job queue is made small
with a launch override, never in the shipped config.properties.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from requests.adapters import HTTPAdapter

from serving.client.api import ServingClient
from serving.run.server import stop
from tests.catalogue import GOOD, JSON
from tests.integration.conftest import launch
from tests.integration.faulty_handler import RAISE_TRIGGER, SLOW_SECONDS, SLOW_TRIGGER

logger = logging.getLogger(__name__)
JOB_QUEUE_SIZE = 4


@pytest.fixture(scope="module")
def server(faulty_mar, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("torchserve-faults")
    srv = launch(workdir, faulty_mar, overrides={"job_queue_size": str(JOB_QUEUE_SIZE)})
    yield srv
    stop(workdir)


def raw_client(server) -> ServingClient:
    """A client that does not retry, to see what TorchServe itself answers."""
    c = server.client
    client = ServingClient(c.inference_url, c.management_url, c.key_file, retries=0)
    client.session.mount("http://", HTTPAdapter(pool_maxsize=64))  # one connection per thread of a burst
    return client


def workers(server) -> dict[int, str]:
    [model] = server.client.describe("sentiment")
    return {w["pid"]: w["status"] for w in model["workers"]}


def test_handler_bug_is_a_generic_500_for_that_request_alone(server):
    before = workers(server)
    client = server.client

    def call(i: int):
        text = f"{RAISE_TRIGGER} {GOOD}" if i % 8 == 0 else GOOD
        return i, client.predict_raw(json.dumps({"text": text, "key": i}), JSON)

    with ThreadPoolExecutor(max_workers=JOB_QUEUE_SIZE) as pool:  # never more than the queue holds
        results = list(pool.map(call, range(48)))
    failed_ids = []
    for i, response in results:
        body = response.json()
        if i % 8:
            assert response.status_code == 200 and body["key"] == i
            continue
        assert response.status_code == 500 and response.headers["Content-Type"].startswith("application/json")
        assert set(body) == {"error"} and body["error"]["code"] == "internal_error"
        message = body["error"]["message"]
        assert RAISE_TRIGGER not in message and "RuntimeError" not in message and "Traceback" not in message
        request_id = message.split("request id ")[1].split(")")[0]
        failed_ids.append(request_id)
    assert client.retried == 0  # the handler's own 500 is an answer, not a lost request
    assert workers(server) == before  # the same worker processes, all READY
    time.sleep(0.5)  # let the worker's stdout reach model_log.log
    log = (server.logs / "model_log.log").read_text(errors="replace")
    for request_id in failed_ids:
        assert f"scoring failed for request {request_id}: RuntimeError at" in log


def test_burst_beyond_the_job_queue_gets_fast_503s_and_recovers(server):
    """Both workers held by a slow batch; a burst of 30 finds a queue of 4: the rest are refused at once."""
    client = raw_client(server)
    with ThreadPoolExecutor(max_workers=40) as pool:
        blockers = []
        for _ in range(2):  # one per worker: the second arrives while the first holds its worker
            blockers.append(pool.submit(client.predict_raw, f"{SLOW_TRIGGER} {GOOD}", "text/plain"))
            time.sleep(0.3)

        def call(_):
            started = time.monotonic()
            response = client.predict_raw(GOOD, "text/plain")
            return response.status_code, time.monotonic() - started, response

        burst = list(pool.map(call, range(30)))
        assert [b.result().status_code for b in blockers] == [200, 200]
    refused = [(t, r) for status, t, r in burst if status == 503]
    served = [t for status, t, _ in burst if status == 200]
    assert len(refused) + len(served) == len(burst)
    assert len(refused) >= len(burst) - JOB_QUEUE_SIZE - 2
    assert max(t for t, _ in refused) < 1.0 < SLOW_SECONDS  # refused at once, not after a wait
    assert refused[0][1].json()["type"] == "ServiceUnavailableException"
    logger.info(
        "overload: %d of %d refused with 503 in at most %.3f s; %d queued and served",
        len(refused),
        len(burst),
        max(t for t, _ in refused),
        len(served),
    )
    assert all(client.predict_raw(GOOD, "text/plain").status_code == 200 for _ in range(20))  # recovered


def test_kill_9_of_a_worker_is_recovered(server):
    """kill -9 one of the two workers under traffic: only requests in flight on it fail (TorchServe's 507),
    the shipped client's retry absorbs those, TorchServe starts a new worker, and later requests succeed."""
    before = workers(server)
    assert len(before) == 2 and set(before.values()) == {"READY"}
    victim = sorted(before)[0]
    raw, retrying = raw_client(server), server.client
    done = threading.Event()
    outcomes: dict[str, list] = {"raw": [], "retrying": []}

    def traffic(name: str, client: ServingClient):
        while not done.is_set():
            response = client.predict_raw(GOOD, "text/plain")
            outcomes[name].append((time.monotonic(), response.status_code))

    threads = [threading.Thread(target=traffic, args=(n, c)) for n, c in [("raw", raw), ("retrying", retrying)] * 2]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        deadline = killed_at + 90
        while time.monotonic() < deadline:
            now = workers(server)
            if victim not in now and len(now) == 2 and set(now.values()) == {"READY"}:
                break
            time.sleep(0.1)
        recovery = time.monotonic() - killed_at
        time.sleep(1.0)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert recovery < 90, "TorchServe did not replace the killed worker"
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    failed = [(t - killed_at, status) for t, status in outcomes["raw"] if status != 200]
    logger.info(
        "kill -9: %d of %d unretried requests failed %s; %d retried by the client; new worker READY after %.1f s",
        len(failed),
        len(outcomes["raw"]),
        sorted({s for _, s in failed}),
        retrying.retried,
        recovery,
    )
    assert len(failed) <= 2  # at most the in-flight requests of the two raw threads
    assert all(status in (500, 507) for _, status in failed)
    assert all(status == 200 for _, status in outcomes["retrying"])
    assert all(status == 200 for t, status in outcomes["raw"] if t > killed_at + recovery)
    assert all(server.client.predict_raw(GOOD, "text/plain", retries=0).status_code == 200 for _ in range(10))
