"""`make soak`: the shipped TorchServe configuration under 60 s of closed-loop load at concurrency 32 on loopback.

    python -m bench.soak [--seconds 60] [--connections 32] [--out bench/results/soak.json]

Starts its own TorchServe (shipped config.properties and archive, free loopback ports, a temporary working
directory), warms it up, then runs Debian's wrk against /predictions/sentiment with keyed JSON reviews while
sampling every worker's resident memory. Passes when no request failed (any status but 200, or a socket error)
and no worker grew its RSS by 10 % or more; the results go to a JSON file either way.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.reviews import load_reviews
from bench.wrk import SOAK, run_wrk, write_bodies
from serving.run.server import ROOT, launch, server_pid

logger = logging.getLogger(__name__)
LUA = Path(__file__).resolve().with_name("soak.lua")
MAX_RSS_GROWTH = 0.10


def worker_rss(client) -> dict[int, int]:
    [model] = client.describe("sentiment")
    return {w["pid"]: psutil.Process(w["pid"]).memory_info().rss for w in model["workers"]}


def sample(client, stop_event: threading.Event, into: list) -> None:
    while not stop_event.wait(2.0):
        into.append({"t": time.time(), "rss": worker_rss(client)})


def run(seconds: int, connections: int, out: Path) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    bodies = write_bodies(
        [json.dumps({"text": t, "key": i}).encode() for i, t in enumerate(load_reviews(500))], workdir
    )
    server = launch(workdir / "torchserve", ROOT / "model_store" / "sentiment.mar")
    client = server.client
    try:
        url, token = client.inference_url, server.token

        def wrk(load_seconds: int) -> dict:
            return run_wrk(
                url, "/predictions/sentiment", bodies, connections, load_seconds, token, script=SOAK, threads=2
            )

        logger.info("warming up for 10 s")
        warmup = wrk(10)
        before = worker_rss(client)
        samples: list = []
        halt = threading.Event()
        sampler = threading.Thread(target=sample, args=(client, halt, samples), daemon=True)
        sampler.start()
        logger.info("soaking for %d s at concurrency %d", seconds, connections)
        soak = wrk(seconds)
        halt.set()
        sampler.join()
        after = worker_rss(client)
        frontend_rss = psutil.Process(server_pid(server.workdir)).memory_info().rss
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    growth = {str(pid): (after[pid] - before[pid]) / before[pid] for pid in before if pid in after}
    answered = sum(soak["statuses"].values())
    errors = soak["errors"] + sum(n for s, n in soak["statuses"].items() if s != "200")
    errors += abs(soak["requests"] - answered)  # every request wrk counts must have been answered with a status
    result = {
        "seconds": seconds,
        "connections": connections,
        "requests": soak["requests"],
        "requests_per_second": round(soak["req_per_s"], 1),
        "errors": errors,
        "statuses": soak["statuses"],
        "socket_errors": soak["error_kinds"],
        "latency_ms": {k: round(soak[f"{k}_ms"], 2) for k in ("p50", "p90", "p99", "max")},
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
