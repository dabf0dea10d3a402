"""`python -m serving.run.server start|stop` as `make serve` and `make stop` run them, with their output captured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import psutil

from serving.run.server import SERVER_OUT, loopback_properties, server_pid, stop, write_properties
from tests.conftest import ROOT


def _server(*args: str, timeout: float) -> subprocess.CompletedProcess:
    # capture_output: a server left holding the pipe would keep this from returning (TimeoutExpired)
    return subprocess.run(
        [sys.executable, "-m", "serving.run.server", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_start_lets_a_pipe_close_and_stop_waits_for_the_server_to_exit(mar_path, bigram_mar_path, tmp_path):
    store = tmp_path / "model_store"
    store.mkdir()
    shutil.copy2(mar_path, store / "sentiment.mar")
    shutil.copy2(bigram_mar_path, store / "sentiment-bigram.mar")  # config.properties loads both
    config = write_properties(ROOT / "config.properties", loopback_properties(store), tmp_path / "config.properties")
    workdir = tmp_path / "instance"
    workdir.mkdir()
    try:
        started = _server("start", "--config", str(config), "--workdir", str(workdir), timeout=300)
        assert started.returncode == 0, started.stderr[-2000:]
        assert "TorchServe is serving sentiment, sentiment-bigram" in started.stdout
        assert (workdir / "logs" / SERVER_OUT).is_file()
        frontend = psutil.Process(server_pid(workdir))
        processes = [frontend.pid, *(p.pid for p in frontend.children(recursive=True))]
        assert len(processes) >= 4  # the frontend, sentiment's two workers and sentiment-bigram's one
        assert os.getsid(frontend.pid) != os.getsid(0)  # a session of its own: off the caller's terminal

        stopped = _server("stop", "--workdir", str(workdir), timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]
        assert f"TorchServe stopped (pid {frontend.pid})" in stopped.stderr
        assert all(_exited(pid) for pid in processes)  # gone when stop returned, not some time later

        again = _server("stop", "--workdir", str(workdir), timeout=120)
        assert again.returncode == 0 and f"no TorchServe running in {workdir}" in again.stderr
    finally:
        stop(workdir)  # whatever failed above, nothing is left running
