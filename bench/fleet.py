"""`make bench-fleet`: one replica direct against the same replica behind nginx, and a fleet of three, in one run.

    python -m bench.fleet [--seconds 6] [--repeats 3] [--out bench/results/fleet.json]

On 2 cores a fleet cannot serve more than one replica: every replica shares the same two cores. What this
measures is what the proxy costs per request (the same replica, direct and proxied, cells alternating), the
fleet's throughput beside one replica's, and from one replica's req/s per core, the capacity model: replicas and
cores for a target load. Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.cells import Target, median_cell, one_cell, warm_up
from bench.reviews import load_reviews, review_mix, single_bodies
from bench.wrk import write_bodies
from serving.fleet.lifecycle import start_fleet, stop_fleet
from serving.run.server import ROOT

logger = logging.getLogger(__name__)
CONNECTIONS = (1, 64)
TARGET_LOADS = (1_000, 10_000, 100_000)
HEADROOM = 0.7  # plan replicas to run at 70 % of measured capacity: a burst or a lost replica finds room


def cells(targets: list[Target], bodies: Path, seconds: float, repeats: int) -> dict[str, list[dict]]:
    """{target: [median cell per concurrency]}, cells alternating between the targets."""
    out: dict[str, list[dict]] = {t.name: [] for t in targets}
    for connections in CONNECTIONS:
        runs: dict[str, list[dict]] = {t.name: [] for t in targets}
        for i in range(repeats):
            for target in targets if i % 2 == 0 else reversed(targets):
                runs[target.name].append(one_cell(target, bodies, connections, seconds))
        for name, got in runs.items():
            out[name].append(median_cell(got))
    return out


def capacity(req_per_s_per_replica: float, cores_per_replica: int) -> list[dict]:
    """Replicas and cores for each target load, each replica planned at HEADROOM of its measured req/s."""
    plan = []
    for load in TARGET_LOADS:
        replicas = max(2, math.ceil(load / (req_per_s_per_replica * HEADROOM)))  # never one: a kill is an outage
        plan.append({"req_per_s": load, "replicas": replicas, "cores": replicas * cores_per_replica})
    return plan


def run(seconds: float, repeats: int, mix: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    mar = ROOT / "model_store" / "sentiment.mar"
    bodies = write_bodies(single_bodies(review_mix(mix, 500) if mix == "sentence" else load_reviews(500)), work)
    one = start_fleet(work / "one", mar, replicas=1, supervise=False)
    try:
        [replica] = one.replicas
        direct = Target("direct", replica.inference, None)
        proxied = Target("proxied", one.url, one.credential)
        for target in (direct, proxied):
            warm_up(target, bodies)
        measured = cells([direct, proxied], bodies, seconds, repeats)
    finally:
        stop_fleet(Path(one.directory))
    three = start_fleet(work / "three", mar, replicas=3, supervise=False)
    try:
        target = Target("fleet of 3", three.url, three.credential)
        warm_up(target, bodies)
        measured |= cells([target], bodies, seconds, repeats)
    finally:
        stop_fleet(Path(three.directory))
    cores = os.cpu_count() or 1
    c64 = {name: rows[-1] for name, rows in measured.items()}
    c1 = {name: rows[0] for name, rows in measured.items()}
    per_replica = c64["proxied"]["req_per_s"]
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_before": None,
        "cores": cores,
        "mix": mix,
        "seconds": seconds,
        "repeats": repeats,
        "cells": measured,
        "proxy_overhead": {
            "c1_p50_ms": c1["proxied"]["p50_ms"] - c1["direct"]["p50_ms"],
            "c64_req_per_s_ratio": c64["proxied"]["req_per_s"] / c64["direct"]["req_per_s"],
        },
        "fleet_of_3_vs_one_replica_c64": c64["fleet of 3"]["req_per_s"] / c64["proxied"]["req_per_s"],
        "req_per_s_per_core": per_replica / cores,
        "capacity_model": {
            "assumes": f"one replica per {cores} cores sustains {per_replica:,.0f} req/s ({mix} reviews, c=64), "
            f"planned at {HEADROOM:.0%} of it",
            "plan": capacity(per_replica, cores),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mix", choices=("imdb", "sentence"), default="imdb")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fleet.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    before = [round(x, 2) for x in os.getloadavg()]
    result = run(args.seconds, args.repeats, args.mix)
    result["load_average_before"] = before
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("proxy_overhead", "fleet_of_3_vs_one_replica_c64")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
