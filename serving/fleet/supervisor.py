"""The fleet's supervisor: a process of its own that restarts a replica whose server died, on the same ports,
with the fleet's current default version, so nginx takes it back into rotation by itself.

A restart that fails (its port still held, a start slower than the wait, a process gone under psutil) is logged
and tried again with a growing delay (Backoff): the supervisor never gives up on a replica and never dies of
one. Each round it writes supervisor.json (its pid, the time, each replica's restarts and failures), which
`status` reads: a supervisor that stopped writing it is reported down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.fleet.state import MODEL, FleetState, ReplicaState, process_alive, replica_alive
from serving.run.server import ROOT, start, stop, wait_until_ready

logger = logging.getLogger(__name__)
SUPERVISOR_STATUS = "supervisor.json"  # written by the supervisor every round; read by `status`


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
                if stopping or time.time() < record.retry_at or replica_alive(replica):
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
    running = pid is not None and written.get("pid") == pid and process_alive(pid)
    age = time.time() - written.get("updated", 0.0)
    return {"alive": running, "pid": pid, "seconds_since_round": round(age, 1), "replicas": written["replicas"]}


def start_supervisor(directory: Path) -> int:
    """The supervisor as a process of its own (`python -m serving.fleet supervise`), logging to supervisor.log."""
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
