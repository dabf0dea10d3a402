"""Start and stop the two stacks under test on free loopback ports (never 8080-8082 / 7070-7071)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests

from serving.archive import build
from serving.client import ServingClient
from serving.server import (
    ROOT,
    free_ports,
    loopback_properties,
    server_pid,
    start,
    stop,
    wait_until_ready,
    write_properties,
)

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
class TorchServe:
    workdir: Path
    base_url: str
    metrics_url: str
    client: ServingClient
    started_in_s: float

    @property
    def token(self) -> str:
        return self.client.keys().get("inference", "")

    def stop(self) -> None:
        stop(self.workdir)


def start_torchserve(
    workdir: Path, mar: Path, overrides: dict[str, str] | None = None, register: dict | None = None
) -> TorchServe:
    """TorchServe with the shipped config.properties (ports and model store replaced) serving `mar`.

    With `register` (ServingClient.register arguments), the model is registered through the management API
    after start-up instead of by load_models: the only way to get maxBatchDelay 0."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "model_store"
    store.mkdir(exist_ok=True)
    if mar.parent != store:
        shutil.copy2(mar, store / "sentiment.mar")
    props = {**loopback_properties(store), **(overrides or {})}
    if register is not None:
        props["load_models"] = ""
    config = write_properties(ROOT / "config.properties", props, workdir / "config.properties")
    client = ServingClient(props["inference_address"], props["management_address"], workdir / "key_file.json")
    began = time.monotonic()
    start(config, workdir)
    try:
        wait_until_ready(client, model=None if register else "sentiment", workdir=workdir, poll=0.05)
        if register is not None:
            client.register("sentiment.mar", **register)
            wait_until_ready(client, workdir=workdir, poll=0.05)
    except Exception:
        stop(workdir)
        raise
    return TorchServe(workdir, props["inference_address"], props["metrics_address"], client, time.monotonic() - began)


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
    env = {**os.environ, "BENCH_MODEL_DIR": str(model_dir), "BENCH_TOKEN": token, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    peer = Peer(process, f"http://127.0.0.1:{port}", token)
    body = json.dumps({"text": "The film was great."})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the FastAPI peer exited during start-up")
        try:
            ok = [
                requests.post(f"{peer.base_url}/predictions/sentiment", data=body, headers=headers, timeout=2).ok
                for _ in range(4 * workers)
            ]
            if all(ok):
                return peer
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    peer.stop()
    raise TimeoutError("the FastAPI peer did not answer in time")


def torchserve_alive(workdir: Path) -> bool:
    pid = server_pid(workdir)
    return pid is not None and Path(f"/proc/{pid}").exists()
