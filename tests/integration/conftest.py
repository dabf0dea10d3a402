"""A real TorchServe on free loopback ports with a temporary model store, started and stopped per module."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from serving.client import ServingClient
from serving.server import start, stop, wait_until_ready, write_properties
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Server:
    workdir: Path
    model_store: Path
    client: ServingClient
    metrics_url: str

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"


def launch(
    workdir: Path, mar_path: Path, overrides: dict[str, str] | None = None, model_config: str | None = None
) -> Server:
    """Start TorchServe in `workdir` with the shipped config.properties, ports and store replaced."""
    store = workdir / "model_store"
    store.mkdir(parents=True)
    shutil.copy2(mar_path, store / "sentiment.mar")
    inference, management, metrics, grpc_inference, grpc_management = free_ports(5)
    props = {
        "inference_address": f"http://127.0.0.1:{inference}",
        "management_address": f"http://127.0.0.1:{management}",
        "metrics_address": f"http://127.0.0.1:{metrics}",
        "grpc_inference_port": str(grpc_inference),
        "grpc_management_port": str(grpc_management),
        "model_store": str(store),
        **(overrides or {}),
    }
    config = write_properties(ROOT / "config.properties", props, workdir / "config.properties")
    client = ServingClient(props["inference_address"], props["management_address"], workdir / "key_file.json")
    start(config, workdir)
    try:
        wait_until_ready(
            client, "sentiment" if "sentiment" in props.get("load_models", "sentiment") else None, workdir=workdir
        )
    except Exception:
        stop(workdir)
        raise
    return Server(workdir, store, client, props["metrics_address"])


@pytest.fixture(scope="module")
def server(mar_path, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("torchserve")
    srv = launch(workdir, mar_path)
    yield srv
    stop(workdir)
