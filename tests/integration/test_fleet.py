"""A fleet of three real TorchServe replicas behind a real nginx on loopback: the edge's contract, a replica killed
under keyed traffic, a rolling upgrade and a rollback, all without a failed request.

The clients here are plain `requests` sessions with no retries of their own: what they see is what nginx and
the fleet give any client."""

from __future__ import annotations

import itertools
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests

from serving.build.archive import build
from serving.fleet.lifecycle import start_fleet, stop_fleet
from serving.fleet.rollout import holds, promote, rollback
from serving.fleet.state import FleetState, replica_alive
from serving.fleet.status import describe, status_text
from serving.fleet.supervisor import supervisor_status
from serving.run.server import server_pid
from tests.conftest import requires
from tests.integration.conftest import archive_with, model_config_with

REPLICAS = 3
NGINX = shutil.which("nginx") or Path("/usr/sbin/nginx").exists()
pytestmark = requires(None if NGINX else "nginx is missing: `make test` installs it")


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fleet-archive")


@pytest.fixture(scope="module")
def running(config_dir):
    """Three replicas of one worker each (three on two cores is crowded enough), the proxy, the supervisor."""
    mar = archive_with(config_dir, model_config_with(minWorkers=1, maxWorkers=1))
    state = start_fleet(config_dir / "fleet", mar, replicas=REPLICAS)
    yield state
    stop_fleet(Path(state.directory))


@dataclass
class Traffic:
    """Closed-loop clients sending keyed reviews through the proxy until stopped; every answer is kept."""

    state: FleetState
    clients: int = 2
    answers: list[tuple[str, int, dict, str]] = field(default_factory=list)  # key, status, body, replica
    failures: list[str] = field(default_factory=list)
    halt: threading.Event = field(default_factory=threading.Event)
    keys: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.threads = [threading.Thread(target=self.loop) for _ in range(self.clients)]

    def loop(self) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.state.credential}", "Content-Type": "application/json"}
        while not self.halt.is_set():
            key = f"k{next(self.keys)}"
            body = f'{{"text": "A fine film, well acted.", "key": "{key}"}}'
            try:
                r = session.post(f"{self.state.url}/predictions/sentiment", data=body, headers=headers, timeout=40)
                self.answers.append((key, r.status_code, r.json(), r.headers.get("X-Upstream", "")))
            except (requests.RequestException, ValueError) as err:
                self.failures.append(f"{key}: {type(err).__name__}")

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_) -> None:
        self.halt.set()
        for t in self.threads:
            t.join()

    def check_every_key_answered_once(self) -> None:
        assert self.failures == [], self.failures[:5]
        assert [status for _, status, _, _ in self.answers if status != 200] == []
        keys = [key for key, _, _, _ in self.answers]
        assert len(keys) == len(set(keys)) > 0
        assert all(body["key"] == key for key, _, body, _ in self.answers)


def post(state: FleetState, path: str = "/predictions/sentiment", method: str = "POST", **headers):
    return requests.request(method, state.url + path, data=b"A great film.", headers=headers, timeout=30)


def test_the_edge_admits_only_credentialed_predictions(running):
    auth = {"Authorization": f"Bearer {running.credential}", "Content-Type": "text/plain"}
    ok = post(running, **auth)
    assert ok.status_code == 200 and ok.json()["label"] == "positive"
    assert ok.headers["X-Upstream"] in {r.address for r in running.replicas}

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": running.credential}):
        refused = post(running, **headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    # the replicas' other routes, and management, are not reachable through the proxy
    for path in ("/ping", "/models", "/models/sentiment", "/metrics", "/api-description", "/wfpredict/x", "/"):
        assert post(running, path, **auth).status_code == 404, path
    assert post(running, method="GET", **auth).status_code == 405
    assert post(running, method="DELETE", **auth).status_code == 405
    too_big = requests.post(running.url + "/predictions/sentiment", data=b"x" * 7_000_000, headers=auth, timeout=30)
    assert too_big.status_code == 413
    # spread over every replica
    seen = {post(running, **auth).headers["X-Upstream"] for _ in range(12)}
    assert seen == {r.address for r in running.replicas}


def test_a_rolling_upgrade_fails_no_request(running, config_dir):
    v2 = build("sentiment", "2.0", config_dir / "v2", config_file=config_dir / "model-config.yaml")
    with Traffic(running) as traffic:
        time.sleep(1.0)
        assert promote(running, v2) == "2.0"
        time.sleep(1.0)
    traffic.check_every_key_answered_once()
    by_replica: dict[str, list[str]] = {}
    for _, _, body, replica in traffic.answers:
        by_replica.setdefault(replica, []).append(body["model_version"])
    for replica, versions in by_replica.items():  # once a replica answers 2.0, it never answers 1.0 again
        first = versions.index("2.0") if "2.0" in versions else len(versions)
        assert set(versions[first:]) <= {"2.0"}, replica
    assert {v for r in running.replicas for v in [r.client().default_version("sentiment")]} == {"2.0"}
    assert post(running, Authorization=f"Bearer {running.credential}").json()["model_version"] == "2.0"


def test_a_replica_killed_under_traffic_fails_no_request_and_comes_back(running):
    victim = running.replicas[0]
    frontend = psutil.Process(server_pid(Path(victim.workdir)))
    with Traffic(running) as traffic:
        time.sleep(1.0)
        for process in [frontend, *frontend.children(recursive=True)]:  # the whole TorchServe, at once
            process.kill()
        deadline = time.monotonic() + 120
        while server_pid(Path(victim.workdir)) == frontend.pid or not replica_alive(victim):
            assert time.monotonic() < deadline, "the supervisor did not restart the killed replica"
            time.sleep(0.5)
        restarted = len(traffic.answers)  # from here on, an answer from its address is the new server's
        while not any(replica == victim.address for *_, replica in traffic.answers[restarted:]):
            assert time.monotonic() < deadline, "the restarted replica did not come back into rotation"
            time.sleep(0.5)
    traffic.check_every_key_answered_once()
    assert server_pid(Path(victim.workdir)) != frontend.pid
    back = [body for *_, body, replica in traffic.answers if replica == victim.address][-1]
    assert back["model_version"] == "2.0"  # restarted with the fleet's default, not the archive it started with


def test_rollback_and_management_from_one_place(running):
    assert rollback(running) == "1.0"
    described = describe(running)
    assert len(described) == REPLICAS
    assert all([m["modelVersion"] for m in models] == ["1.0"] for models in described.values())
    assert post(running, Authorization=f"Bearer {running.credential}").json()["model_version"] == "1.0"


def hold(port: int, timeout: float = 30) -> socket.socket:
    """Bind and listen on a loopback port as soon as it is free (a killed server's port frees in a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        holder = socket.socket()
        try:
            holder.bind(("127.0.0.1", port))
            holder.listen()
            return holder
        except OSError:
            holder.close()
            assert time.monotonic() < deadline, f"port {port} never came free"
            time.sleep(0.01)


def test_the_supervisor_survives_restarts_that_fail_and_brings_the_replica_back(running):
    """A replica killed while another socket holds its inference port for 20 s: every restart in that time fails;
    the supervisor logs each failure, backs off, stays alive, and brings the replica back once the port is free.
    `status` shows the supervisor up and the replica's restarts and failures."""
    victim = running.replicas[1]
    name = Path(victim.workdir).name
    before = supervisor_status(running)["replicas"].get(name, {"restarts": 0, "failures": 0})
    frontend = psutil.Process(server_pid(Path(victim.workdir)))
    for process in [frontend, *frontend.children(recursive=True)]:
        process.kill()
    holder = hold(int(victim.inference.rsplit(":", 1)[1]))
    try:
        held = time.monotonic()
        while True:  # 20 s, and until a failed restart is on record (a slow machine starts slowly)
            assert psutil.pid_exists(running.supervisor_pid), "the supervisor died"
            during = supervisor_status(running)
            failed = during["replicas"].get(name, {}).get("failures", 0) - before["failures"]
            if time.monotonic() - held > 20 and failed >= 1:
                break
            assert time.monotonic() - held < 180, f"no failed restart on record: {during}"
            time.sleep(0.5)
        assert during["alive"] and not replica_alive(victim), during
    finally:
        holder.close()
    deadline = time.monotonic() + 240
    while True:  # back, and the restart on record (written once the round that restarted it ends)
        after = supervisor_status(running)
        restarts = after["replicas"][name]["restarts"] - before["restarts"]
        if restarts >= 1 and replica_alive(victim) and holds(victim, set(running.archives)):
            break
        assert time.monotonic() < deadline, f"the supervisor did not bring the replica back: {after}"
        assert psutil.pid_exists(running.supervisor_pid), "the supervisor died"
        time.sleep(1)
    assert after["alive"] and restarts == 1 and after["replicas"][name]["failing"] == 0, after
    assert post(running, Authorization=f"Bearer {running.credential}").status_code == 200
    log = (Path(running.directory) / "supervisor.log").read_text()
    assert log.count(f"restarting replica {name} failed") == after["replicas"][name]["failures"]
    text = status_text(running)
    assert "supervisor up" in text and f"{name} up: {after['replicas'][name]['restarts']} restarts" in text
