"""The output through Hadoop's filesystem layer (file:// here): atomic replacement, the lock beside the output
and when it is stale, and the new-path rule of filesystems without an atomic rename."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from batch import lock, storage
from batch.errors import UsageError
from batch.lock import OutputLocked, lock_location, locked
from batch.output import staged, stale_siblings
from batch.storage import Storage


@pytest.fixture
def fs(spark, tmp_path):
    with Storage(spark, tmp_path.as_uri()) as opened:
        yield opened


def _write(fs: Storage, directory: str, text: str) -> None:
    fs.mkdirs(directory)
    fs.write(storage.child(directory, "part"), text.encode())


def _names(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def test_staged_output_replaces_the_target_only_on_success(fs, tmp_path):
    target = storage.uri(tmp_path / "out")
    with staged(fs, target) as staging:
        _write(fs, staging, "first")
    assert (tmp_path / "out" / "part").read_text() == "first"

    with pytest.raises(RuntimeError), staged(fs, target) as staging:
        _write(fs, staging, "half")
        raise RuntimeError("the job failed half-way")
    assert (tmp_path / "out" / "part").read_text() == "first" and not stale_siblings(fs, target)

    with staged(fs, target) as staging:
        _write(fs, staging, "second")
    assert _names(tmp_path) == ["out"] and (tmp_path / "out" / "part").read_text() == "second"


def test_leftovers_of_a_killed_run_are_cleaned_and_a_retired_output_restored(fs, tmp_path):
    (tmp_path / ".out.staging-dead").mkdir()  # killed while writing
    (tmp_path / ".out.retired-dead").mkdir()  # killed between the two renames: the previous output
    (tmp_path / ".out.retired-dead" / "part").write_text("previous")
    with staged(fs, storage.uri(tmp_path / "out")) as staging:
        assert (tmp_path / "out" / "part").read_text() == "previous"
        _write(fs, staging, "new")
    assert _names(tmp_path) == ["out"] and (tmp_path / "out" / "part").read_text() == "new"


def _lock_file(tmp_path, host: str, pid: int, age: float = 0.0):
    path = tmp_path / ".out.lock"
    path.write_text(json.dumps({"host": host, "pid": pid, "started": time.time() - age}))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_runs_lock_refuses_a_second_run_with_a_clear_message(fs, tmp_path):
    target = storage.uri(tmp_path / "out")
    assert lock_location(target) == storage.uri(tmp_path / ".out.lock")
    with locked(fs, target):
        assert (tmp_path / ".out.lock").is_file()
        refused = rf"is being written by another run \(pid {os.getpid()} on "
        with pytest.raises(OutputLocked, match=refused), staged(fs, target):
            pass
        assert issubclass(OutputLocked, UsageError)  # one line from the command line, exit status 2
    assert _names(tmp_path) == []  # released


@pytest.mark.parametrize(
    ("host", "pid", "age", "stale"),
    [
        ("this", "dead", 0, True),  # killed on this host: taken over at once
        ("this", "live", 0, False),
        ("this", "live", lock.STALE_AFTER + 60, True),  # alive, but no heartbeat for too long
        ("other-host", "live", lock.STALE_AFTER - 60, False),  # another host's pid says nothing here
        ("other-host", "live", lock.STALE_AFTER + 60, True),
    ],
)
def test_a_stale_lock_is_taken_over_and_a_fresh_one_is_not(fs, tmp_path, monkeypatch, host, pid, age, stale):
    """The file-based lock of HDFS (here through Hadoop's local filesystem): judged by its pid and its age."""
    monkeypatch.setattr(lock, "_local_file", lambda _: None)
    _lock_file(tmp_path, socket.gethostname() if host == "this" else host, _dead_pid() if pid == "dead" else 1, age)
    target = storage.uri(tmp_path / "out")
    if stale:
        with staged(fs, target) as staging:
            _write(fs, staging, "taken over")
        assert _names(tmp_path) == ["out"]
    else:
        with pytest.raises(OutputLocked), staged(fs, target):
            pass
        assert _names(tmp_path) == [".out.lock"]


def test_the_lock_is_refreshed_while_the_run_holds_it(fs, tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "_local_file", lambda _: None)  # HDFS's lock: the kernel's needs no heartbeat
    monkeypatch.setattr(lock, "HEARTBEAT", 0.2)
    target = storage.uri(tmp_path / "out")
    with locked(fs, target):
        old = time.time() - 3600
        os.utime(tmp_path / ".out.lock", (old, old))
        time.sleep(1.0)
        assert (tmp_path / ".out.lock").stat().st_mtime > old + 3000


def test_without_an_atomic_rename_each_run_writes_to_a_new_path(fs, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "ATOMIC_RENAME", ())  # file:// standing in for an object store
    target = storage.uri(tmp_path / "out")
    with staged(fs, target) as where:
        assert where == target  # no staging directory: a rename would copy every object
        _write(fs, where, "first")
    with pytest.raises(UsageError, match="each run writes to a new --output path"), staged(fs, target):
        pass
    assert (tmp_path / "out" / "part").read_text() == "first"
    with pytest.raises(RuntimeError), staged(fs, storage.uri(tmp_path / "failed")) as where:
        _write(fs, where, "half")
        raise RuntimeError("the job failed half-way")
    assert _names(tmp_path) == ["out"]  # the failed run's partial output is removed, and its lock


def test_storage_operations_on_a_file_uri(fs, tmp_path):
    base = tmp_path.as_uri()
    fs.mkdirs(storage.child(base, "d"))
    fs.write(storage.child(base, "d", "f.json"), b'{"a": 1}')
    assert fs.read(storage.child(base, "d", "f.json")) == b'{"a": 1}'
    assert fs.children(base) == ["d"] and fs.children(storage.child(base, "nowhere")) == []
    fs.rename(storage.child(base, "d"), storage.child(base, "e"))
    assert fs.exists(storage.child(base, "e", "f.json")) and not fs.exists(storage.child(base, "d"))
    assert _names(tmp_path / "e") == ["f.json"]  # no .crc files beside what the job writes itself
    fs.delete(storage.child(base, "e"))
    assert _names(tmp_path) == []
