"""What capture costs: c=64 req/s of the same archive with capture on and off, in one run.

    python -m bench.capture_cost [--seconds 6] [--repeats 3] [--out bench/results/capture.json]

Two TorchServe instances (the shipped model-config.yaml, and the same with `handler.capture.enabled: false`) run
side by side; cells alternate between them (on, off, then off, on, ...) so that a noisy neighbour hurts both
alike, and only the instance under load uses the cores. The cost is 1 - the median of each repeat's on/off
ratio (two cells back to back); the req/s and latencies shown are the median cells. The `sentence`
mix is the harder case for capture: short reviews mean more records per second for the same CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import yaml

from bench.cells import Target, median_cell, one_cell, warm_up
from bench.reviews import MIXES, review_mix, single_bodies
from bench.stacks import archive
from bench.wrk import write_bodies
from evaluation.captures import read as read_captures
from serving.run.server import ROOT, launch

logger = logging.getLogger(__name__)
CONNECTIONS = 64
TARGET_COST = 0.05  # capture may cost at most 5 % of c=64 throughput
# Both frontends' JITs and the workers' caches settle for this long first: cells measured before that ran up
# to a third slower and drifted upwards through the run, which favoured whichever instance went second
WARM_UP_S = 15.0


def archives(work: Path) -> dict[str, Path]:
    out = {}
    for name, enabled in (("on", True), ("off", False)):
        config = yaml.safe_load((ROOT / "model-config.yaml").read_text())
        config["handler"]["capture"]["enabled"] = enabled
        path = work / f"model-config-{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        out[name] = archive(work / f"archive-{name}", path)
    return out


def measure(work: Path, seconds: float, repeats: int) -> dict:
    """{mix: {on, off, cost}} with c=64 medians, and how many records the capture-on instance wrote."""
    work.mkdir(parents=True, exist_ok=True)
    bodies = {mix: write_bodies(single_bodies(review_mix(mix, 1000)), work) for mix in MIXES}
    servers = {name: launch(work / f"torchserve-{name}", mar) for name, mar in archives(work).items()}
    try:
        targets = {n: Target(n, s.client.inference_url, s.token) for n, s in servers.items()}
        for target in targets.values():
            for path in bodies.values():
                warm_up(target, path, WARM_UP_S)
        cells = {(mix, n): [] for mix in MIXES for n in targets}
        for repeat in range(repeats):
            logger.info("capture cost: repeat %d/%d", repeat + 1, repeats)
            order = list(targets) if repeat % 2 == 0 else list(reversed(targets))
            for mix in MIXES:
                for name in order:
                    cells[(mix, name)].append(one_cell(targets[name], bodies[mix], CONNECTIONS, seconds))
        time.sleep(1.0)  # the writer threads' last batches
        captured = read_captures(servers["on"].workdir / "captures")
    finally:
        for server in servers.values():
            server.stop()
    out: dict = {"connections": CONNECTIONS, "seconds_per_cell": seconds, "repeats": repeats}
    for mix in MIXES:
        on, off = median_cell(cells[(mix, "on")]), median_cell(cells[(mix, "off")])
        # each repeat's two cells ran back to back: their ratio cancels what drifts between repeats
        ratios = [a["req_per_s"] / b["req_per_s"] for a, b in zip(cells[(mix, "on")], cells[(mix, "off")], strict=True)]
        cost = 1 - statistics.median(ratios)
        out[mix] = {
            "on": on,
            "off": off,
            "paired_ratios": [round(r, 4) for r in ratios],
            "cost": round(cost, 4),  # 1 - the median of the paired ratios
            "holds": cost <= TARGET_COST,
        }
    out["records_written"] = len(captured.records)
    out["torn_lines"] = captured.torn
    return out


def lines(result: dict) -> list[str]:
    return [
        f"{mix}: c={result['connections']} capture on {result[mix]['on']['req_per_s']:,.0f} req/s, off "
        f"{result[mix]['off']['req_per_s']:,.0f} req/s: cost {result[mix]['cost']:+.1%} (target <= {TARGET_COST:.0%})"
        for mix in MIXES
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "capture.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = ROOT / "bench" / "tmp" / time.strftime("capture-%Y%m%d-%H%M%S")
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **measure(work, args.seconds, args.repeats)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(lines(result)) + f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
