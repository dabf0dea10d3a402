"""A fleet of TorchServe replicas behind nginx on one machine: started, supervised, managed from one place
(its command line: serving.fleet.cli, `python -m serving.fleet`).

Each replica is a whole TorchServe (serving.run.server.launch) in its own working directory, on free loopback ports,
with token authorization off: the proxy is the only way in from clients, it checks the fleet's one credential,
and replicas bound to a private address (loopback here, a pod address behind a NetworkPolicy on a cluster) are
reachable by nothing else that serves clients. A supervisor process restarts a replica whose server died, on
the same ports, with the fleet's current default version, so nginx takes it back into rotation by itself. A
restart that fails (its port still held, a start slower than the wait, a process gone under psutil) is logged
and tried again with a growing delay (Backoff): the supervisor never gives up on a replica and never dies of
one. Each round it writes supervisor.json (its pid, the time, each replica's restarts and failures), which
`status` reads: a supervisor that stopped writing it is reported down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from serving.client.api import HISTORY, ServingClient
from serving.fleet import proxy
from serving.run.server import ROOT, free_ports, launch, max_request_size, server_pid, start, stop, wait_until_ready

logger = logging.getLogger(__name__)
STATE = "fleet.json"
SUPERVISOR_STATUS = "supervisor.json"  # written by the supervisor every round; read by `status`
CREDENTIAL = "credential"
MODEL = "sentiment"
REPLICA_OVERRIDES = {
    # The proxy authenticates clients; each replica would otherwise mint tokens of its own that the proxy could not
    # know. Replicas listen on a private address that only the proxy is meant to reach.
    "disable_token_authorization": "true",
}


@dataclass
class ReplicaState:
    workdir: str
    inference: str  # http://127.0.0.1:port
    management: str

    @property
    def address(self) -> str:
        return self.inference.removeprefix("http://")

    def client(self, **kwargs) -> ServingClient:
        history = Path(self.workdir) / HISTORY  # each replica's defaults, for its rollback
        return ServingClient(self.inference, self.management, key_file=None, history_file=history, **kwargs)


@dataclass
class FleetState:
    directory: str
    listen: str  # the proxy's host:port: the fleet's one address for clients
    replicas: list[ReplicaState]
    archives: dict[str, str] = field(default_factory=dict)  # version -> archive file name in every model store
    default: str = "1.0"  # the version a restarted replica serves
    supervisor_pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    @property
    def credential(self) -> str:
        return (Path(self.directory) / CREDENTIAL).read_text().strip()

    def save(self) -> None:
        path = Path(self.directory) / STATE
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(path)  # the supervisor reads it while the CLI writes it

    @classmethod
    def load(cls, directory: Path) -> FleetState:
        path = Path(directory) / STATE
        if not path.exists():
            raise FileNotFoundError(f"no fleet in {directory}: `make fleet` starts one")
        raw = json.loads(path.read_text())
        raw["replicas"] = [ReplicaState(**r) for r in raw["replicas"]]
        return cls(**raw)


# -- lifecycle --------------------------------------------------------------------------------------------------
def start_fleet(
    directory: Path, mar: Path, replicas: int = 3, port: int | None = None, supervise: bool = True
) -> FleetState:
    """Replicas, then the proxy, then the supervisor; returns once a prediction through the proxy answers."""
    directory = Path(directory).resolve()
    if (directory / STATE).exists() and _alive(FleetState.load(directory)):
        raise RuntimeError(f"a fleet already runs in {directory}: `make fleet-stop` first")
    directory.mkdir(parents=True, exist_ok=True)
    credential = directory / CREDENTIAL
    credential.write_text(secrets.token_urlsafe(32) + "\n")
    credential.chmod(0o600)
    started: list[ReplicaState] = []
    try:
        with ThreadPoolExecutor(replicas) as pool:  # each start waits on its own JVM and workers
            launches = [
                pool.submit(launch, directory / f"replica-{i}", mar, REPLICA_OVERRIDES) for i in range(replicas)
            ]
            for future in launches:
                with contextlib.suppress(Exception):  # one that failed is raised again below
                    instance = future.result()
                    started.append(ReplicaState(str(instance.workdir), *_addresses(instance.properties)))
            for future in launches:
                future.result()
        listen = f"127.0.0.1:{port or free_ports(1)[0]}"
        state = FleetState(str(directory), listen, started, archives={"1.0": "sentiment.mar"})
        start_proxy(state)
        state.save()
        if supervise:
            state.supervisor_pid = _start_supervisor(directory)
            state.save()
        wait_until_proxied(state)
        if supervise and not psutil.pid_exists(state.supervisor_pid):
            raise RuntimeError(f"the fleet's supervisor exited; see {directory / 'supervisor.log'}")
    except Exception:
        for replica in started:
            stop(Path(replica.workdir))
        proxy.stop(directory)
        raise
    return state


def start_proxy(state: FleetState) -> None:
    max_body = max_request_size()
    settings = proxy.ProxySettings(
        state.listen, tuple(r.address for r in state.replicas), state.credential, max_body, models=(MODEL,)
    )
    proxy.render(settings, Path(state.directory))
    proxy.check(Path(state.directory))
    proxy.start(Path(state.directory))


def stop_fleet(directory: Path) -> None:
    """Supervisor first (so that it restarts nothing), then the proxy, then every replica, each waited for."""
    state = FleetState.load(directory)
    if state.supervisor_pid and psutil.pid_exists(state.supervisor_pid):
        os.kill(state.supervisor_pid, signal.SIGTERM)
        psutil.wait_procs([psutil.Process(state.supervisor_pid)], timeout=10)
    proxy.stop(Path(state.directory))
    for replica in state.replicas:
        stop(Path(replica.workdir))
    state.supervisor_pid = None
    state.save()


def wait_until_proxied(state: FleetState, timeout: float = 60.0) -> None:
    """Until a prediction through the proxy answers 200."""
    import requests

    headers = {"Authorization": f"Bearer {state.credential}", "Content-Type": "text/plain"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.post(f"{state.url}/predictions/{MODEL}", data=b"fine", headers=headers, timeout=5).ok:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the fleet's proxy did not answer within {timeout:.0f} s; see {state.directory}")


# -- the supervisor ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backoff:
    """The wait before the next restart of a replica whose restarts keep failing."""

    first_s: float = 1.0  # a port held for a moment is free again soon: try again almost at once
    factor: float = 2.0  # then back off, so a lasting cause (a full disk, a bad archive) is not hammered
    most_s: float = 30.0  # but never wait longer than this: once the cause is gone, the replica is back soon

    def delay(self, failures: int) -> float:
        return min(self.most_s, self.first_s * self.factor ** max(0, failures - 1))


@dataclass
class ReplicaRecord:
    """What the supervisor did for one replica, as supervisor.json and `status` show it."""

    restarts: int = 0  # restarts that brought it back
    failures: int = 0  # restarts that failed, in all
    failing: int = 0  # failed restarts since the last one that worked: sets the backoff
    last_error: str | None = None  # the last failure's type and message (no review text is ever in one)
    retry_at: float = 0.0  # time.time() before which the replica is not tried again


def supervise(directory: Path, poll: float = 1.0, backoff: Backoff | None = None) -> None:
    """Restart every replica whose TorchServe has died, until SIGTERM. Runs as its own process; nothing a restart
    or a round raises ends it."""
    stopping = False

    def on_term(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    backoff = backoff or Backoff()
    records: dict[str, ReplicaRecord] = {}
    while not stopping:
        try:
            state = FleetState.load(directory)
            for replica in state.replicas:
                record = records.setdefault(Path(replica.workdir).name, ReplicaRecord())
                if stopping or time.time() < record.retry_at or _replica_alive(replica):
                    continue
                _write_status(Path(directory), records)  # a restart takes a start-up: say the supervisor is here
                _restart(state, replica, record, backoff)
        except Exception:  # noqa: BLE001 - a round that failed (the state file half-read, ...) is tried again
            logger.exception("a supervision round failed; the next one starts in %.0f s", poll)
        _write_status(Path(directory), records)
        time.sleep(poll)


def _restart(state: FleetState, replica: ReplicaState, record: ReplicaRecord, backoff: Backoff) -> None:
    name = Path(replica.workdir).name
    try:
        restart_replica(state, replica)
    except Exception as err:  # noqa: BLE001 - logged, counted and tried again later: the supervisor lives on
        record.failures += 1
        record.failing += 1
        record.last_error = f"{type(err).__name__}: {err}"[:500]
        wait = backoff.delay(record.failing)
        record.retry_at = time.time() + wait
        logger.warning(
            "restarting replica %s failed (%s; %d in a row); next attempt in %.0f s",
            name,
            record.last_error,
            record.failing,
            wait,
        )
    else:
        record.restarts += 1
        record.failing = 0
        record.retry_at = 0.0


def _write_status(directory: Path, records: dict[str, ReplicaRecord]) -> None:
    status = {"pid": os.getpid(), "updated": time.time(), "replicas": {n: asdict(r) for n, r in records.items()}}
    path = directory / SUPERVISOR_STATUS
    partial = path.with_suffix(".tmp")
    with contextlib.suppress(OSError):  # a full disk must not end supervision either
        partial.write_text(json.dumps(status, indent=2) + "\n")
        partial.replace(path)


def restart_replica(state: FleetState, replica: ReplicaState, timeout: float = 120.0) -> None:
    """Start a dead replica again on its own ports and config, serving the fleet's default version; the other
    versions the fleet keeps (for `rollback`) are registered again beside it, one worker each. A start that
    fails is stopped again, so that a half-started server (one port bound, another not) is never taken for a
    live replica."""
    workdir = Path(replica.workdir)
    logger.warning("replica %s is down; restarting it with %s %s", workdir.name, MODEL, state.default)
    stop(workdir)  # whatever is left of it (workers of a killed frontend) goes first
    _ports_free(replica)
    try:
        start(workdir / "config.properties", workdir, models=f"{MODEL}={state.archives[state.default]}")
        client = replica.client()
        wait_until_ready(client, MODEL, timeout=timeout, workdir=workdir)
        for version, archive in state.archives.items():
            if version != state.default:
                client.register_version(archive, MODEL, workers=1)
    except BaseException:
        stop(workdir)
        raise
    logger.info("replica %s is back", workdir.name)


def _ports_free(replica: ReplicaState) -> None:
    """Raise when the replica's inference or management port is taken: a TorchServe started then would load its
    model for seconds before it failed to bind, or run half-bound."""
    for url in (replica.inference, replica.management):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is no obstacle
            try:
                probe.bind((host, int(port)))
            except OSError as err:
                raise OSError(f"{url}: the port is in use ({err.strerror})") from None


def supervisor_status(state: FleetState) -> dict:
    """Whether the supervisor is alive (the fleet's supervisor process runs, and supervisor.json is its own), when
    it last finished a round (a round that restarts a replica lasts as long as the start-up), and what it did for
    each replica."""
    try:
        written = json.loads((Path(state.directory) / SUPERVISOR_STATUS).read_text())
    except (OSError, ValueError):
        written = {"pid": None, "updated": 0.0, "replicas": {}}
    pid = state.supervisor_pid
    running = pid is not None and written.get("pid") == pid and _process_alive(pid)
    age = time.time() - written.get("updated", 0.0)
    return {"alive": running, "pid": pid, "seconds_since_round": round(age, 1), "replicas": written["replicas"]}


def _start_supervisor(directory: Path) -> int:
    log = open(directory / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child, which outlives this call
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.fleet", "--dir", str(directory), "supervise"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return process.pid


# -- management from one place ----------------------------------------------------------------------------------
def wait_until_whole(state: FleetState, timeout: float = 180.0) -> None:
    """Until every replica is up and holds every version the fleet keeps: a replica the supervisor is bringing
    back must not be promoted, rolled back or scaled half-way."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [r for r in state.replicas if not _replica_alive(r) or not _holds(r, set(state.archives))]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"replicas not restored after {timeout:.0f} s: {[Path(r.workdir).name for r in missing]}"
            )
        time.sleep(0.5)


def _holds(replica: ReplicaState, versions: set[str]) -> bool:
    try:
        return versions <= set(replica.client().versions(MODEL))
    except Exception:  # noqa: BLE001 - not answering yet: not whole
        return False


def describe(state: FleetState) -> dict[str, list[dict]]:
    return {Path(r.workdir).name: r.client().describe(MODEL) for r in state.replicas}


def scale(state: FleetState, workers: int) -> None:
    wait_until_whole(state)
    for replica in state.replicas:
        replica.client().scale(MODEL, workers, workers)


def set_default(state: FleetState, version: str) -> None:
    wait_until_whole(state)
    for replica in state.replicas:
        replica.client().set_default(MODEL, version)
    state.default = version
    state.save()


def promote(state: FleetState, archive: Path, workers: int = 1) -> str:
    """A rolling upgrade: on each replica in turn, register the archive, wait until it answers, make it the
    default. The previous version stays registered on every replica for `rollback`; each replica serves the new
    version from the moment it is its default, and the others serve the old one until their turn."""
    archive = Path(archive).resolve()
    version = None
    wait_until_whole(state)
    for replica in state.replicas:
        store = Path(replica.workdir) / "model_store"
        shutil.copy2(archive, store / archive.name)
        promotion = replica.client().promote(archive.name, MODEL, workers)
        version = promotion.version
        logger.info("%s: %s %s is the default", Path(replica.workdir).name, MODEL, version)
        state.archives[version] = archive.name
        state.default = version
        state.save()  # a replica restarted from now on comes back with the new version
    return version


def rollback(state: FleetState) -> str:
    """Back to the previous default (not the highest other version) on every replica; returns the default now."""
    wait_until_whole(state)
    for replica in state.replicas:
        replica.client().rollback(MODEL)
    remaining = {v for r in state.replicas for v in r.client().versions(MODEL)}
    state.default = state.replicas[0].client().default_version(MODEL)  # each replica's previous default: one
    state.archives = {v: a for v, a in state.archives.items() if v in remaining}
    state.save()
    return state.default


# -- helpers ----------------------------------------------------------------------------------------------------
def _addresses(props: dict[str, str]) -> tuple[str, str]:
    return props["inference_address"], props["management_address"]


def _replica_alive(replica: ReplicaState) -> bool:
    pid = server_pid(Path(replica.workdir))
    return pid is not None and _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone between the pid file and this look, or not ours to see
        return False


def _alive(state: FleetState) -> bool:
    return proxy.proxy_pid(Path(state.directory)) is not None or any(_replica_alive(r) for r in state.replicas)


def status_text(state: FleetState) -> str:
    """The proxy, the supervisor and each replica, with the supervisor's restarts and failures of it."""
    supervisor = supervisor_status(state)
    lines = [
        f"proxy {state.url} {'up' if proxy.proxy_pid(Path(state.directory)) else 'DOWN'}; default {state.default}",
        f"supervisor {'up' if supervisor['alive'] else 'DOWN'} (pid {supervisor['pid']}, "
        f"last round {supervisor['seconds_since_round']:.0f} s ago)",
    ]
    for replica in state.replicas:
        name = Path(replica.workdir).name
        record = supervisor["replicas"].get(name, {})
        line = f"{name} {'up' if _replica_alive(replica) else 'DOWN'}: {record.get('restarts', 0)} restarts"
        line += f", {record.get('failures', 0)} failed"
        if record.get("failing"):
            line += f" (failing now: {record['last_error']})"
        lines.append(line)
    return "\n".join(lines)
