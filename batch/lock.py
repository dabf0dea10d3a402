"""One run per output at a time: a lock file beside the output, `.<name>.lock`, held for the whole run.

A second run on the same output is refused with a message naming the holder, since the first one's staging
directory would otherwise be deleted by the second's clean-up.

On a POSIX filesystem (a `file://` output) the lock is the kernel's: `fcntl.flock` on the lock file, taken
without waiting. It is released when its process ends, however it ends (SIGKILL included), so a lock file left
by a killed run is simply locked again by the next one: no pid or age is judged, and two runs started at the
same instant cannot both hold it. (flock is not shared across NFS clients: an output on NFS written from several
machines needs HDFS or one machine.) The holder removes the file while still holding it; a run that opened the
removed file checks, once it holds its lock, that the path still names that file, and otherwise starts again.

On HDFS, which has no such lock, the lock is a file created without overwrite (atomic there). Its holder
refreshes its modification time every HEARTBEAT seconds. It is stale when its holder is a process of this host
that no longer exists, or when it has not been refreshed for STALE_AFTER seconds (a holder on another host that
died). A stale lock is taken over by renaming it to a name made from the holder it records (an atomic rename,
which fails when the target exists): of the runs that judged the same lock stale, exactly one rename succeeds.
The renamed file stays as a tombstone for as long as the lock is then held, so that a run that judged the
same holder stale but renames late finds the name taken, rather than renaming the new lock aside; the holder
removes it when it releases the lock (a rename keeps the file's old modification time, so a tombstone's age
says nothing). The winner then creates its own lock without overwrite. On object stores a rename is a copy, so
there the lock is a check and then a write, and two runs started at the same instant are not both caught.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batch import storage
from batch.errors import UsageError
from batch.storage import Storage

logger = logging.getLogger(__name__)
LOCK = ".{name}.lock"
TAKEN = "{lock}.taken-{holder}"  # a stale lock renamed by the run that takes it over (HDFS)
HEARTBEAT = 30.0
STALE_AFTER = 600.0


class OutputLocked(UsageError):
    """Another run holds the output's lock."""


def lock_location(target: str) -> str:
    return storage.child(storage.parent(target), LOCK.format(name=storage.name(target)))


@contextmanager
def locked(fs: Storage | None, target: str) -> Iterator[None]:
    """Hold the target's lock for the block; released at the end. `fs` is needed for outputs that are not local
    files only."""
    lock = lock_location(target)
    path = _local_file(lock)
    if path is not None:
        with _kernel_lock(path, target):
            yield
        return
    with _file_lock(fs, lock, target):
        yield


def _local_file(lock: str) -> Path | None:
    """The lock's local path when the kernel can lock it (a file:// output), else None."""
    return storage.local_path(lock)


def _identity() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}


def _refused(target: str, holder: dict, lock: str) -> OutputLocked:
    since = time.strftime("%H:%M:%S", time.localtime(holder.get("started", 0)))
    return OutputLocked(
        f"{target} is being written by another run (pid {holder.get('pid')} on {holder.get('host')}, "
        f"since {since}): wait for it, or write to another --output ({lock} is its lock)"
    )


def _parse(content: bytes) -> dict:
    try:
        holder = json.loads(content)
    except ValueError:
        return {}  # half-written by a holder that died at once, or being written now
    return holder if isinstance(holder, dict) else {}


# -- POSIX: the kernel's lock -------------------------------------------------------------------------------------
@contextmanager
def _kernel_lock(path: Path, target: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _parse(os.pread(fd, 4096, 0))
            os.close(fd)
            raise _refused(target, holder, str(path)) from None
        if _names(path, fd):
            break
        os.close(fd)  # released and removed between our open and our lock: lock the file the path names now
    left = _parse(os.pread(fd, 4096, 0))
    if left:
        logger.warning("taking over the lock of %s left by pid %s on %s", target, left.get("pid"), left.get("host"))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_identity()).encode(), 0)  # for the message a second run gets
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still held: see the module's docstring
        os.close(fd)  # releases the lock


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        on_disk, held = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


# -- HDFS: a file created without overwrite, taken over by an atomic rename ------------------------------------------
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
    if fs.exists(lock):
        return False
    try:
        fs.write(lock, content, overwrite=False)
    except Exception as err:  # noqa: BLE001 - py4j's error for Hadoop's FileAlreadyExistsException
        if "FileAlreadyExists" in f"{type(err).__name__} {err}":
            return False
        raise
    return True


def _holder(fs: Storage, lock: str) -> tuple[bytes, float] | None:
    """(the lock's content, its age in seconds), or None when it is gone."""
    try:
        return fs.read(lock), time.time() - fs.modified(lock)
    except Exception:  # noqa: BLE001 - released between the attempt and this read
        return None


def _taken_name(lock: str, content: bytes) -> str:
    return TAKEN.format(lock=lock, holder=hashlib.sha256(content).hexdigest()[:16])


def _clear_tombstones(fs: Storage, lock: str) -> None:
    """Remove the stale locks renamed aside by the runs that contended for this lock: they are long done."""
    prefix = TAKEN.format(lock=storage.name(lock), holder="")
    parent = storage.parent(lock)
    for name in fs.children(parent):
        old = storage.child(parent, name)
        if name.startswith(prefix):
            with contextlib.suppress(Exception):  # another run may be removing it too
                fs.delete(old)


def _take_over(fs: Storage, lock: str, content: bytes) -> str | None:
    """Rename the stale lock whose content is `content` aside; its new name when this run did, else None."""
    taken = _taken_name(lock, content)
    try:
        fs.rename(lock, taken)
    except Exception:  # noqa: BLE001 - another run took it first (the source is gone, or the target exists)
        return None
    found = _holder(fs, taken)
    if found is not None and found[0] == content:
        return taken
    # a lock created since (the one judged stale was gone already) was renamed: put it back as it was
    with contextlib.suppress(Exception):
        fs.rename(taken, lock)
    return None


@contextmanager
def _file_lock(fs: Storage, lock: str, target: str) -> Iterator[None]:
    fs.mkdirs(storage.parent(lock))
    mine = json.dumps(_identity()).encode()
    for _ in range(3):
        if _create(fs, lock, mine):
            break
        found = _holder(fs, lock)
        if found is None:
            continue
        content, age = found
        holder = _parse(content)
        if not is_stale(holder, age):
            raise _refused(target, holder, lock)
        logger.warning("taking over the stale lock of %s (pid %s on %s)", target, holder.get("pid"), holder.get("host"))
        _take_over(fs, lock, content)  # by this run or another: the next round creates the lock or is refused
    else:
        raise OutputLocked(f"{target}: could not take its lock {lock}; another run keeps taking it")
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
        _clear_tombstones(fs, lock)
