"""The same job through the command line: on a real standalone Spark cluster (a master and a worker started on
loopback from the pyspark installation's own launcher), and killed half-way without harming the output, while
a second run on the same output is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest
import requests

from batch.job import PARQUET, run
from batch.lock import OutputLocked
from batch.output import STAGING
from batch.settings import JobSettings
from bench.reviews import load_reviews
from serving.run.server import free_ports
from tests.batch.conftest import read_output, write_jsonl
from tests.catalogue import LIMITS
from tests.conftest import BOOK_REVIEWS, ROOT

SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, **extra}


def _start(log: Path, *args: str, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(SPARK_CLASS), *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _end(proc: subprocess.Popen) -> None:
    """Stop a process this test started, with the children it spawned in its own session (executors)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _alive_workers(ui_port: int) -> int:
    try:
        return requests.get(f"http://127.0.0.1:{ui_port}/json/", timeout=2).json().get("aliveworkers", 0)
    except (requests.RequestException, ValueError):
        return 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """spark://127.0.0.1:<port> with one worker of 2 cores; both stopped (by pid) at the end of the module."""
    work = tmp_path_factory.mktemp("spark-cluster")
    port, master_ui, worker_ui = free_ports(3)
    env = _env(SPARK_LOG_DIR=str(work), SPARK_WORKER_DIR=str(work / "worker"))
    master_args = ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(master_ui)]
    started = [_start(work / "master.log", "org.apache.spark.deploy.master.Master", *master_args, env=env)]
    try:
        worker_args = ["--host", "127.0.0.1", "--cores", "2", "--memory", "2g", "--webui-port", str(worker_ui)]
        url = f"spark://127.0.0.1:{port}"
        started.append(_start(work / "worker.log", "org.apache.spark.deploy.worker.Worker", url, *worker_args, env=env))
        deadline = time.monotonic() + 120
        while _alive_workers(master_ui) < 1:
            assert all(p.poll() is None for p in started), (work / "master.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the Spark worker did not register with the master"
            time.sleep(0.5)
        yield url
    finally:
        for proc in reversed(started):
            _end(proc)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "batch", *args]


def _rows(spark, output) -> list[dict]:
    return sorted((row.asDict() for row in spark.read.parquet(f"{output}/{PARQUET}").collect()), key=str)


def test_the_cluster_writes_the_same_output_as_local_mode_row_for_row(cluster, spark, mar_path, tmp_path):
    texts = [*BOOK_REVIEWS.values(), *load_reviews(60), "", None, 42, "x" * (LIMITS.max_chars + 1)]
    keys = [*range(len(texts) - 4), "k-1", 2.5, [3], None]  # keys of other types, a refused one, none
    rows = [{"key": k, "text": t} for k, t in zip(keys, texts, strict=True)]
    rows.append('{"key": "cut", "text": "a line that was cut')
    data = write_jsonl(tmp_path / "reviews.jsonl", rows)
    done = subprocess.run(
        _cli(
            "--master", cluster, "--input", data.as_uri(), "--output", str(tmp_path / "cluster"), "--mar", str(mar_path)
        ),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(rows)} rows: {len(rows) - 5} scored, 5 errors" in done.stderr
    assert "(local tuning)" not in done.stderr  # a cluster's master gets none of it

    run(spark, JobSettings(input=data, output=tmp_path / "local", mar=mar_path))
    on_cluster, on_local = _rows(spark, tmp_path / "cluster"), _rows(spark, tmp_path / "local")
    assert len(on_cluster) == len(on_local) == len(rows)
    floats = ("positive_review_probability", "positive_review_logits", "unknown_token_fraction")
    for c, loc in zip(on_cluster, on_local, strict=True):
        assert {k: v for k, v in c.items() if k not in floats} == {k: v for k, v in loc.items() if k not in floats}
        for name in floats:
            assert (c[name] is None and loc[name] is None) or abs(c[name] - loc[name]) < 1e-6, (c["key"], name)


def test_a_run_killed_half_way_leaves_no_partial_or_doubled_output(spark, mar_path, tmp_path):
    rows = [{"key": i, "text": t} for i, t in enumerate(load_reviews(400) * 8)]
    data = write_jsonl(tmp_path / "reviews.jsonl", rows)
    output = tmp_path / "out"
    run(spark, JobSettings(input=data, output=output, mar=mar_path, partitions=2))
    before = {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()}

    args = _cli("--master", "local[1]", "--input", str(data), "--output", str(output), "--mar", str(mar_path))
    proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        staging = []
        while not any((s / PARQUET).exists() for s in staging):  # Spark has begun writing the new output
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.1)
            staging = list(tmp_path.glob(STAGING.format(name="out") + "*"))
        # a second run on the same output meanwhile is refused, and leaves the first one's staging alone
        with pytest.raises(OutputLocked, match=f"pid {proc.pid} on "):
            run(spark, JobSettings(input=data, output=output, mar=mar_path, partitions=2))
        assert all(s.exists() for s in staging)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        _end(proc)
    proc.wait()

    after = {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()}
    assert after == before, "the previous output changed"
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out."))
    assert ".out.lock" in left and len(left) == 2, "the kill should have left its lock and staging directory"

    summary = run(spark, JobSettings(input=data, output=output, mar=mar_path, partitions=2))  # takes the lock over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "reviews.jsonl"]
    out = read_output(spark, output, json_keys=True)
    assert summary.rows == len(rows) == sum(len(v) for v in out.values()) and sorted(out) == list(range(len(rows)))
