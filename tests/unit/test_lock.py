"""batch.lock without Spark: runs released together from a barrier, 100 rounds, on a lock file a killed run left
behind; exactly one of them holds the lock each round, on a POSIX filesystem (the kernel's flock) and with
HDFS's semantics (create without overwrite, a rename that fails on an existing target)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch import lock, storage
from batch.lock import OutputLocked

ROUNDS = 100
RUNS = 4  # on 2 cores: enough to interleave, few enough to start quickly


class FileAlreadyExistsException(OSError):
    """Named as Hadoop's, which is how batch.lock recognises it through py4j."""


class HdfsLike:
    """batch.storage.Storage's operations with HDFS's semantics, on local files: a file created without overwrite
    fails when it exists, and a rename fails when its source is gone or its target exists."""

    @staticmethod
    def _path(location: str) -> Path:
        return storage.local_path(location)

    def exists(self, location: str) -> bool:
        return self._path(location).exists()

    def mkdirs(self, location: str) -> None:
        self._path(location).mkdir(parents=True, exist_ok=True)

    def write(self, location: str, data: bytes, overwrite: bool = True) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            fd = os.open(self._path(location), flags, 0o644)
        except FileExistsError:
            raise FileAlreadyExistsException(location) from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def read(self, location: str) -> bytes:
        return self._path(location).read_bytes()

    def modified(self, location: str) -> float:
        return self._path(location).stat().st_mtime

    def touch(self, location: str, when: float) -> None:
        os.utime(self._path(location), (when, when))

    def children(self, location: str) -> list[str]:
        path = self._path(location)
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def rename(self, source: str, target: str) -> None:
        os.link(self._path(source), self._path(target))  # fails when the target exists, as HDFS's rename does
        os.unlink(self._path(source))

    def delete(self, location: str) -> None:
        path = self._path(location)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def left_by_a_killed_run(path: Path, pid: int) -> None:
    """The lock file of a run killed with SIGKILL: its own pid, on this host, never refreshed since."""
    old = time.time() - lock.STALE_AFTER - 60
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "started": old}))
    os.utime(path, (old, old))


def contend(index, fs, target, barriers, held, rounds) -> None:
    start, attempted, released = barriers
    for r in range(rounds):
        start.wait()
        try:
            with lock.locked(fs, target):
                held[r * RUNS + index] = 1
                attempted.wait()  # holding: every other run has tried meanwhile
        except OutputLocked:
            attempted.wait()
        released.wait()


def race(tmp_path: Path, fs, rounds: int = ROUNDS) -> list[int]:
    """How many runs held the lock in each round."""
    target = storage.uri(tmp_path / "out")
    lock_file = storage.local_path(lock.lock_location(target))
    context = multiprocessing.get_context("fork")
    barriers = [context.Barrier(RUNS + 1, timeout=60) for _ in range(3)]
    held = context.Array("i", rounds * RUNS)
    runs = [
        context.Process(target=contend, args=(i, fs, target, barriers, held, rounds), daemon=True) for i in range(RUNS)
    ]
    dead = _dead_pid()
    for run in runs:
        run.start()
    try:
        for _ in range(rounds):
            left_by_a_killed_run(lock_file, dead)
            for barrier in barriers:
                barrier.wait()
    finally:
        for run in runs:
            run.join(30)
            if run.is_alive():
                run.kill()
    assert all(run.exitcode == 0 for run in runs), [run.exitcode for run in runs]
    return [sum(held[r * RUNS : (r + 1) * RUNS]) for r in range(rounds)]


def test_one_run_of_many_released_together_holds_the_kernel_lock(tmp_path):
    holders = race(tmp_path, None)
    assert holders == [1] * ROUNDS, f"rounds with other than one holder: {[h for h in holders if h != 1]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # released: the file goes with the last holder


def test_one_run_of_many_released_together_takes_a_stale_hdfs_lock_over(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "_local_file", lambda _: None)  # the file-based protocol, as on HDFS
    holders = race(tmp_path, HdfsLike())
    assert holders == [1] * ROUNDS, f"rounds with other than one holder: {[h for h in holders if h != 1]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # released, each round's renamed stale lock with it


def test_tombstones_are_cleared_when_the_lock_is_released(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "_local_file", lambda _: None)
    (tmp_path / ".out.lock.taken-earlier").write_text("{}")
    (tmp_path / ".other.lock.taken-x").write_text("{}")  # another output's
    with lock.locked(HdfsLike(), storage.uri(tmp_path / "out")):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.lock.taken-x"]


def test_a_held_kernel_lock_refuses_with_the_holders_name_and_a_killed_ones_is_taken(tmp_path):
    target = storage.uri(tmp_path / "out")
    refused = rf"another run \(pid {os.getpid()} on {socket.gethostname()}"
    with lock.locked(None, target), pytest.raises(OutputLocked, match=refused), lock.locked(None, target):
        pass
    # a file whose holder is gone is no lock, whatever it says: its pid may even be alive (reused)
    (tmp_path / ".out.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": 1, "started": 0}))
    with lock.locked(None, target):
        assert json.loads((tmp_path / ".out.lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".out.lock").exists()


def test_a_lock_holder_killed_with_sigkill_frees_the_kernel_lock_at_once(tmp_path):
    target = storage.uri(tmp_path / "out")
    script = (
        "import sys, time; from batch import lock\n"
        f"with lock.locked(None, {target!r}):\n    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=lock.__file__[:-14]
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLocked, match=f"pid {holder.pid} "), lock.locked(None, target):
            pass
    finally:
        holder.kill()
        holder.wait()
    with lock.locked(None, target):  # at once: no age or pid judged
        pass
