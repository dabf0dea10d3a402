"""Capture against a real TorchServe: every answered instance is on disk by key, the live histograms are on the
metrics port, and a deleted, read-only or full capture directory still answers every prediction (counted on the
metrics port, logged once per interval)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from evaluation import captures
from handler.capture import REOPEN_CHECK_S
from tests.catalogue import GOOD, JSON
from tests.conftest import ROOT
from tests.integration.conftest import launch
from tests.integration.test_metrics import sample, scrape

LOG_EVERY_S = 600  # the whole module runs inside one interval: each worker logs its first failure only


def capture_config() -> str:
    config = yaml.safe_load((ROOT / "model-config.yaml").read_text())
    config.update(minWorkers=1, maxWorkers=1)
    config["handler"]["capture"]["error_log_every_s"] = LOG_EVERY_S
    return yaml.safe_dump(config)


@pytest.fixture(scope="module")
def server(mar_path, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("torchserve-capture")
    srv = launch(workdir, mar_path, model_config=capture_config())
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def directory(server) -> Path:
    return server.workdir / "captures"  # the default, relative to the server's working directory


def predict(server, n: int, prefix: str) -> list[float]:
    """`n` keyed predictions, each answered 200; returns their latencies."""
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        response = server.client.predict_raw(json.dumps({"text": GOOD, "key": f"{prefix}-{i}"}), JSON)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200 and response.json()["key"] == f"{prefix}-{i}"
    return latencies


def keys(directory: Path) -> set:
    return {r["key"] for r in captures.read(directory).records}


def wait_for(condition, timeout: float = 15.0, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)
    return value


def capture_errors(server) -> float:
    return sample(scrape(server), "CaptureErrors_total") or sample(scrape(server), "CaptureErrors")


def test_every_answered_instance_is_captured_by_key(server, directory):
    predict(server, 5, "ok")
    bad = server.client.predict_raw(json.dumps({"instances": [{"text": GOOD, "key": "ok-5"}, {"text": ""}]}), JSON)
    assert bad.status_code == 200
    wait_for(lambda: {f"ok-{i}" for i in range(6)} <= keys(directory))
    records = captures.read(directory).records
    ok = [r for r in records if r["key"] == "ok-0"][0]
    assert ok["model_name"] == "sentiment" and ok["model_version"] == "1.0" and ok["label"] == "positive"
    assert "text" not in ok and ok["error"] is None and ok["tokens"] > 0
    assert any(r["error"] == "empty_text" for r in records)
    [path] = captures.files(directory)
    assert path.parts[-4:-1] == ("model=sentiment", "version=1.0", path.parts[-2])
    assert path.parts[-2].startswith("hour=")


def test_live_histograms_are_on_the_metrics_port(server):
    def seen():
        predict(server, 1, "hist")
        text = scrape(server)
        return all(sample(text, f"{n}_count") > 0 for n in ("positive_review_probability", "unknown_token_fraction"))

    wait_for(seen)
    text = scrape(server)
    assert "# TYPE positive_review_probability histogram" in text
    assert "# TYPE unknown_token_fraction histogram" in text


def test_a_deleted_directory_answers_and_is_recreated(server, directory):
    shutil.rmtree(directory)
    time.sleep(REOPEN_CHECK_S)
    predict(server, 3, "deleted")
    wait_for(lambda: directory.exists() and {f"deleted-{i}" for i in range(3)} <= keys(directory))


@contextlib.contextmanager
def read_only(path: Path):
    """Nothing can be created under `path`, for root too (root ignores permission bits: chattr +i, immutable)."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_directory_still_answers_and_counts(server, directory):
    shutil.rmtree(directory)
    directory.mkdir()
    before = capture_errors(server)
    with read_only(directory):
        time.sleep(REOPEN_CHECK_S)
        latencies = predict(server, 20, "read-only")
        assert max(latencies) < 2.0
        wait_for(lambda: capture_errors(server) > before or predict(server, 1, "read-only-more") and False)
        assert not any(directory.iterdir())
    predict(server, 2, "writable")
    wait_for(lambda: {"writable-0", "writable-1"} <= keys(directory))


def test_a_full_disk_still_answers_and_counts(server, directory):
    """/dev/full answers every write with ENOSPC, as a full disk does: the worker's capture file becomes it."""
    [path] = wait_for(lambda: captures.files(directory))
    path.unlink()
    path.symlink_to("/dev/full")
    before = capture_errors(server)
    time.sleep(REOPEN_CHECK_S)
    latencies = predict(server, 20, "full")
    assert max(latencies) < 2.0
    wait_for(lambda: capture_errors(server) > before or predict(server, 1, "full-more") and False)
    path.unlink()
    predict(server, 2, "space")
    wait_for(lambda: {"space-0", "space-1"} <= keys(directory))


def test_failures_are_logged_once_per_interval_without_review_text(server):
    time.sleep(0.5)  # let the worker's stdout reach model_log.log
    log = (server.logs / "model_log.log").read_text(errors="replace")
    failures = [line for line in log.splitlines() if "capture failed" in line]
    assert len(failures) == 1, failures  # two faults, one worker, one interval
    assert GOOD not in log
