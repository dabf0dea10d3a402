"""The peers (FastAPI, LitServe) and the archive the benchmarks serve; TorchServe by serving.run.server.launch."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests

from serving.build.archive import build
from serving.run.server import ROOT, free_ports

logger = logging.getLogger(__name__)


def archive(workdir: Path, model_config: Path = ROOT / "model-config.yaml") -> Path:
    """sentiment.mar built from the shipped sources with the given model-config.yaml."""
    store = workdir / "model_store"
    store.mkdir(parents=True, exist_ok=True)
    return build("sentiment", "1.0", store, config_file=model_config)


def unpack(mar: Path, directory: Path) -> Path:
    """The .mar unpacked as TorchServe unpacks it for a worker (the peer loads the very same files)."""
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(mar) as z:
        z.extractall(directory)
    return directory


@dataclass
class Peer:
    process: subprocess.Popen
    base_url: str
    token: str

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # uvicorn's supervisor and the workers it started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_peer(model_dir: Path, workers: int = 2, token: str = "peer-token", timeout: float = 60.0) -> Peer:
    """FastAPI + uvicorn with `workers` processes and no access log, in its own process group."""
    (port,) = free_ports(1)
    cmd = [sys.executable, "-m", "uvicorn", "bench.peer:app", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    env = {"BENCH_MODEL_DIR": str(model_dir), "BENCH_TOKEN": token}
    return _start("the FastAPI peer", cmd, env, port, token, 4 * workers, timeout)


def start_litserve(model_dir: Path, workers: int = 2, token: str = "peer-token", timeout: float = 120.0) -> Peer:
    """LitServe with `workers` inference workers and its recommended settings (bench/litserve_peer.py)."""
    (port,) = free_ports(1)
    cmd = [sys.executable, "-m", "bench.litserve_peer", "--model-dir", str(model_dir), "--port", str(port)]
    cmd += ["--token", token, "--workers", str(workers)]
    return _start("the LitServe peer", cmd, {}, port, token, 4 * workers, timeout)


PEERS = {"peer": start_peer, "litserve": start_litserve}  # the stacks `make bench` compares with TorchServe


def _start(name: str, cmd: list[str], env: dict, port: int, token: str, probes: int, timeout: float) -> Peer:
    """Start a peer in its own process group; return once `probes` requests in a row answer 200."""
    env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    peer = Peer(process, f"http://127.0.0.1:{port}", token)
    body = json.dumps({"text": "The film was great."})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited during start-up")
        try:
            ok = [
                requests.post(f"{peer.base_url}/predictions/sentiment", data=body, headers=headers, timeout=2).ok
                for _ in range(probes)
            ]
            if all(ok):
                return peer
        except requests.RequestException:
            pass
        time.sleep(0.2)
    peer.stop()
    raise TimeoutError(f"{name} did not answer in time")
