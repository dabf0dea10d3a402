"""A real TorchServe on free loopback ports with a temporary model store, started and stopped per module."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import serving.build.archive
import serving.run.server
from serving.build.archive import build
from serving.client.api import ServingClient
from serving.run.server import Instance
from tests.conftest import ROOT

PHASE2 = "sentiment-bigram"  # the phase-2 model of two-phase prediction


def archive_with(out_dir: Path, model_config: str | None = None, handler_file: Path | None = None) -> Path:
    """Build sentiment.mar in `out_dir` with another model-config.yaml text and/or handler file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = ROOT / "model-config.yaml"
    if model_config is not None:
        config = out_dir / "model-config.yaml"
        config.write_text(model_config)
    return build(
        "sentiment",
        "1.0",
        out_dir,
        config_file=config,
        handler_file=handler_file or ROOT / "handler/sentiment_handler.py",
    )


def model_config_with(**settings) -> str:
    """The shipped model-config.yaml with some top-level settings replaced (e.g. minWorkers=1), as the archive
    builder replaces them for sentiment-bigram."""
    return serving.build.archive.model_config_with((ROOT / "model-config.yaml").read_text(), settings)


def launch_phase2_only(workdir: Path, mar_path: Path, bigram_mar_path: Path) -> Instance:
    """TorchServe serving only the phase-2 model (the device is phase 1), token authorization on, as shipped."""
    return launch(workdir, mar_path, {"load_models": f"{PHASE2}={PHASE2}.mar"}, models={PHASE2: bigram_mar_path})


def all_workers_ready(client: ServingClient, model: str, timeout: float = 120.0) -> list[dict]:
    """Wait until every worker of `model` is READY: the first answer comes as soon as one worker is."""
    deadline = time.monotonic() + timeout
    while True:
        workers = [w for m in client.describe(model) for w in m["workers"]]
        if workers and all(w["status"] == "READY" for w in workers):
            return workers
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers of {model} not READY after {timeout:.0f} s: {workers}")
        time.sleep(0.2)


def launch(
    workdir: Path,
    mar_path: Path,
    overrides: dict[str, str] | None = None,
    model_config: str | None = None,
    models: dict[str, Path] | None = None,
) -> Instance:
    """serving.run.server.launch, then wait until every worker is READY (the first answer comes from one).

    With `model_config` (the text of a model-config.yaml), the archive is rebuilt with it first."""
    if model_config is not None:
        mar_path = archive_with(workdir / "archive", model_config)
    srv = serving.run.server.launch(workdir, mar_path, overrides, models=models)
    try:
        for model in serving.run.server.loaded_models(srv.properties):
            all_workers_ready(srv.client, model)
    except Exception:
        srv.stop()
        raise
    return srv


@pytest.fixture(scope="module")
def server(mar_path, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("torchserve")
    srv = launch(workdir, mar_path)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def faulty_mar(tmp_path_factory) -> Path:
    """The shipped handler plus test-only triggers (tests/integration/faulty_handler.py), never shipped."""
    return archive_with(
        tmp_path_factory.mktemp("faulty-archive"), handler_file=Path(__file__).with_name("faulty_handler.py")
    )
