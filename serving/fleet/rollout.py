"""Changing what every replica serves, from one place: scale, set the default, promote a new version replica by
replica, roll back. Each waits first until every replica is whole, so none is changed half-way; each new default
goes into fleet.json, so a replica the supervisor restarts comes back serving it."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from serving.fleet.state import MODEL, FleetState, ReplicaState, replica_alive

logger = logging.getLogger(__name__)


def wait_until_whole(state: FleetState, timeout: float = 180.0) -> None:
    """Until every replica is up and holds every version the fleet keeps: a replica the supervisor is bringing
    back must not be promoted, rolled back or scaled half-way."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [r for r in state.replicas if not replica_alive(r) or not holds(r, set(state.archives))]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"replicas not restored after {timeout:.0f} s: {[Path(r.workdir).name for r in missing]}"
            )
        time.sleep(0.5)


def holds(replica: ReplicaState, versions: set[str]) -> bool:
    """Whether the replica answers and has every one of these versions registered."""
    try:
        return versions <= set(replica.client().versions(MODEL))
    except Exception:  # noqa: BLE001 - not answering yet: not whole
        return False


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
