"""One run per output at a time: a lock file beside the output, `.<name>.lock`, held for the whole run.

A second run on the same output is refused with a message naming the holder, since the first one's staging
directory would otherwise be deleted by the second's clean-up. The holder refreshes the lock's modification
time every HEARTBEAT seconds. A lock is stale, and the next run takes it over, when its holder is a process of
this host that no longer exists (a run killed with SIGKILL), or when it has not been refreshed for STALE_AFTER
seconds (a holder on another host that died). Creating the lock is atomic on POSIX filesystems (O_EXCL) and on
HDFS (create without overwrite); on object stores it is a check and then a write, so two runs started at the
same instant are not both caught there.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from batch import storage
from batch.errors import UsageError
from batch.storage import Storage

logger = logging.getLogger(__name__)
LOCK = ".{name}.lock"
HEARTBEAT = 30.0
STALE_AFTER = 600.0


class OutputLocked(UsageError):
    """Another run holds the output's lock."""


def lock_location(target: str) -> str:
    return storage.child(storage.parent(target), LOCK.format(name=storage.name(target)))


def is_stale(holder: dict, age: float) -> bool:
    """True when the lock's holder is gone: a dead process of this host, or no heartbeat for STALE_AFTER s."""
    if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0))):
        return True
    return age > STALE_AFTER


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _create(fs: Storage, lock: str, content: bytes) -> bool:
    """Create the lock file unless it exists; True when this call created it."""
    path = storage.local_path(lock)
    if path is not None:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return True
    if fs.exists(lock):
        return False
    try:
        fs.write(lock, content, overwrite=False)
    except Exception as err:  # noqa: BLE001 - py4j's error for Hadoop's FileAlreadyExistsException
        if "FileAlreadyExistsException" in str(err):
            return False
        raise
    return True


def _holder(fs: Storage, lock: str) -> tuple[dict, float] | None:
    """(what the lock says, its age in seconds), or None when it is gone."""
    try:
        content, modified = fs.read(lock), fs.modified(lock)
    except Exception:  # noqa: BLE001 - released between the attempt and this read
        return None
    try:
        holder = json.loads(content)
    except ValueError:
        holder = {}  # half-written by a holder that died at once: judged by its age
    return holder, time.time() - modified


def acquire(fs: Storage, target: str) -> str:
    """Take the target's lock, taking over a stale one; raises OutputLocked when a live run holds it."""
    lock = lock_location(target)
    fs.mkdirs(storage.parent(target))
    mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}).encode()
    for _ in range(3):
        if _create(fs, lock, mine):
            return lock
        found = _holder(fs, lock)
        if found is None:
            continue
        holder, age = found
        if not is_stale(holder, age):
            since = time.strftime("%H:%M:%S", time.localtime(holder.get("started", 0)))
            raise OutputLocked(
                f"{target} is being written by another run (pid {holder.get('pid')} on {holder.get('host')}, "
                f"since {since}): wait for it, or write to another --output ({lock} is its lock)"
            )
        logger.warning("taking over the stale lock of %s (pid %s on %s)", target, holder.get("pid"), holder.get("host"))
        fs.delete(lock)
    raise OutputLocked(f"{target}: could not take its lock {lock}; another run keeps taking it")


@contextmanager
def locked(fs: Storage, target: str) -> Iterator[None]:
    """Hold the target's lock for the block, refreshing it every HEARTBEAT seconds; released at the end."""
    lock = acquire(fs, target)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT):
            try:
                fs.touch(lock, time.time())
            except Exception as err:  # noqa: BLE001 - a missed beat only ages the lock
                logger.warning("could not refresh the lock %s (%s)", lock, type(err).__name__)

    thread = threading.Thread(target=heartbeat, name="batch-lock", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        fs.delete(lock)
