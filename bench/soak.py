"""`make soak`: the shipped TorchServe configuration under 60 s of closed-loop load at concurrency 32 on loopback.

    python -m bench.soak [--seconds 60] [--connections 32] [--out bench/results/soak.json]

Starts its own TorchServe (shipped config.properties and archive, free loopback ports, a temporary working
directory), warms it up, then runs Debian's wrk against /predictions/sentiment with keyed JSON reviews while
sampling every worker's resident memory. Passes when no request failed (any status but 200, or a socket error)
and no worker grew its RSS by 10 % or more; the results go to a JSON file either way.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from serving.client import ServingClient
from serving.server import ROOT, loopback_properties, start, stop, wait_until_ready, write_properties

logger = logging.getLogger(__name__)
LUA = Path(__file__).resolve().with_name("soak.lua")
DATA = ROOT.parent / "shared" / "data" / "imdb" / "unsup.jsonl.gz"
MAX_RSS_GROWTH = 0.10


def reviews(n: int) -> list[str]:
    """Real unlabelled IMDB reviews when the shared data is there, else synthetic ones of varied length."""
    if DATA.exists():
        with gzip.open(DATA, "rt", encoding="utf-8") as f:
            return [json.loads(next(f))["text"] for _ in range(n)]
    rng = random.Random(0)
    words = ["the", "film", "great", "boring", "plot", "awful", "brilliant", "story", "acting", "slow"]
    return [" ".join(rng.choice(words) for _ in range(rng.choice([5, 40, 230, 900]))) for _ in range(n)]


def wrk(url: str, bodies: Path, token: str, connections: int, seconds: int) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA), url]
    cmd += ["--", str(bodies), "/predictions/sentiment"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={"SOAK_TOKEN": token, "PATH": "/usr/bin"})
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_rss(client) -> dict[int, int]:
    [model] = client.describe("sentiment")
    return {w["pid"]: psutil.Process(w["pid"]).memory_info().rss for w in model["workers"]}


def sample(client, stop_event: threading.Event, into: list) -> None:
    while not stop_event.wait(2.0):
        into.append({"t": time.time(), "rss": worker_rss(client)})


def run(seconds: int, connections: int, out: Path) -> dict:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: `make soak` installs it (apt-get install -y wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    props = loopback_properties(ROOT / "model_store")
    config = write_properties(ROOT / "config.properties", props, workdir / "config.properties")
    client = ServingClient(props["inference_address"], props["management_address"], workdir / "key_file.json")
    bodies = workdir / "bodies.jsonl"
    bodies.write_text("".join(json.dumps({"text": t, "key": i}) + "\n" for i, t in enumerate(reviews(500))))
    start(config, workdir)
    try:
        wait_until_ready(client, workdir=workdir)
        token = client.keys()["inference"]
        url = props["inference_address"]
        logger.info("warming up for 10 s")
        warmup = wrk(url, bodies, token, connections, 10)
        before = worker_rss(client)
        samples: list = []
        halt = threading.Event()
        sampler = threading.Thread(target=sample, args=(client, halt, samples), daemon=True)
        sampler.start()
        logger.info("soaking for %d s at concurrency %d", seconds, connections)
        soak = wrk(url, bodies, token, connections, seconds)
        halt.set()
        sampler.join()
        after = worker_rss(client)
        frontend_rss = psutil.Process(int((workdir / "tmp" / ".model_server.pid").read_text())).memory_info().rss
    finally:
        stop(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    growth = {str(pid): (after[pid] - before[pid]) / before[pid] for pid in before if pid in after}
    answered = sum(soak["statuses"].values())
    errors = sum(soak["errors"].values()) + sum(n for s, n in soak["statuses"].items() if s != "200")
    errors += abs(soak["requests"] - answered)  # every request wrk counts must have been answered with a status
    result = {
        "seconds": seconds,
        "connections": connections,
        "requests": soak["requests"],
        "requests_per_second": round(soak["requests"] / (soak["duration_us"] / 1e6), 1),
        "errors": errors,
        "statuses": soak["statuses"],
        "socket_errors": soak["errors"],
        "latency_ms": {k: round(v / 1000, 2) for k, v in soak["latency_us"].items()},
        "worker_rss_mb_before": {str(p): round(v / 2**20, 1) for p, v in before.items()},
        "worker_rss_mb_after": {str(p): round(v / 2**20, 1) for p, v in after.items()},
        "worker_rss_mb_max": {
            str(p): round(max(s["rss"].get(p, 0) for s in samples) / 2**20, 1) for p in before if samples
        },
        "worker_rss_growth": {p: round(g, 4) for p, g in growth.items()},
        "workers_replaced": sorted(set(before) ^ set(after)),
        "frontend_rss_mb_after": round(frontend_rss / 2**20, 1),
        "warmup": {"seconds": 10, "requests": warmup["requests"]},
        "passed": errors == 0 and set(before) == set(after) and all(g < MAX_RSS_GROWTH for g in growth.values()),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": psutil.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not 1 <= args.seconds <= 600 or not 1 <= args.connections <= 256:
        parser.error("bounded load only: 1-600 s and 1-256 connections")
    result = run(args.seconds, args.connections, args.out)
    logger.info(
        "%d requests (%.0f/s), %d errors, p99 %.1f ms, worker RSS growth %s -> %s",
        result["requests"],
        result["requests_per_second"],
        result["errors"],
        result["latency_ms"]["p99"],
        result["worker_rss_growth"],
        "passed" if result["passed"] else "FAILED",
    )
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
