"""`make bench`: ceiling, TorchServe and its two peers side by side in one run, cold start, plot.

    python -m bench.run [--seconds 6] [--repeats 3] [--out bench/results/latest.json]

The peers: the FastAPI peer (bench/peer.py) and LitServe (bench/litserve_peer.py). Cells alternate between the
three stacks (repeat 1: TorchServe, FastAPI, LitServe, repeat 2: ...), so that a noisy neighbour hurts them
alike; every figure is the median of the repeated cells. Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

import torch

from bench import capture_cost, cold_start, evaluation_scale
from bench.ceiling import ceiling
from bench.cells import Target, median_cell, one_cell, warm_up
from bench.plot import plot
from bench.reviews import MIXES, instance_bodies, load_reviews, review_mix, single_bodies
from bench.stacks import PEERS, archive, unpack
from bench.wrk import write_bodies
from serving.run.server import ROOT, launch, read_properties

logger = logging.getLogger(__name__)
RESULTS = ROOT / "bench" / "results"
CONCURRENCY = (1, 8, 32, 64)
INSTANCES = 100
INSTANCE_CONNECTIONS = 4
# c=1: what a lone request may cost beyond the FastAPI peer's. TorchServe 0.12's batch aggregator
# (Model.pollInferJob) waits maxBatchDelay for a second request before it sends a lone one; the second
# millisecond bounds the two hops the peer does not make (netty -> worker thread -> Unix socket -> Python and
# back), 0.65-0.9 ms in the quiet frontier run with maxBatchDelay 0 (docs/performance.md, "The c=1 floor").
MAX_BATCH_DELAY_MS = 1.0
HOPS_MS = 1.0


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def shipped_knobs() -> dict:
    import yaml

    model = yaml.safe_load((ROOT / "model-config.yaml").read_text())
    props = read_properties(ROOT / "config.properties")
    keep = ("job_queue_size", "vmargs", "metrics_config", "metrics_mode", "number_of_netty_threads")
    return {"model-config.yaml": model, "config.properties": {k: v for k, v in props.items() if k in keep}}


def targets(results: dict) -> list[dict]:
    ts = results["torchserve"]
    out = []
    for mix in MIXES:
        for peer in PEERS:
            if peer not in results:
                continue
            c64 = ts["single"][mix][-1]["req_per_s"] / results[peer]["single"][mix][-1]["req_per_s"]
            out.append({"target": f"{mix}: c=64 req/s ahead of {peer}", "measured": f"{c64:.2f}x", "holds": c64 > 1.0})
        peer = results["peer"]
        c64 = ts["single"][mix][-1]["req_per_s"] / peer["single"][mix][-1]["req_per_s"]
        c1 = ts["single"][mix][0]["p50_ms"] / peer["single"][mix][0]["p50_ms"]
        out.append({"target": f"{mix}: c=64 req/s >= 2x peer", "measured": f"{c64:.2f}x", "holds": c64 >= 2.0})
        out.append({"target": f"{mix}: c=1 p50 <= 2.5x peer", "measured": f"{c1:.2f}x", "holds": c1 <= 2.5})
        ts1, peer1 = ts["single"][mix][0]["p50_ms"], peer["single"][mix][0]["p50_ms"]
        floor = peer1 + MAX_BATCH_DELAY_MS + HOPS_MS
        out.append(
            {
                "target": f"{mix}: c=1 p50 within the aggregator's floor (FastAPI peer's p50 + maxBatchDelay "
                f"{MAX_BATCH_DELAY_MS:g} ms + hops {HOPS_MS:g} ms)",
                "measured": f"{ts1:.2f} ms vs floor {floor:.2f} ms",
                "holds": ts1 <= floor,
            }
        )
    imdb128 = next(r for r in results["ceiling"]["imdb"] if r["batch"] == 128)
    out.append(
        {
            "target": "imdb ceiling at batch 128: >= 2.5x the tokenization it replaced (bench/baseline.py), same run",
            "measured": f"{imdb128['speedup']:.2f}x wall, {imdb128['speedup_cpu']:.2f}x CPU "
            f"({imdb128['items_per_s']:,.0f} vs {imdb128['before']['items_per_s']:,.0f} reviews/s)",
            "holds": imdb128["speedup"] >= 2.5,
        }
    )
    ceiling128 = imdb128["items_per_s"] * results["cores"]
    inst = ts["instances"]["reviews_per_s"] / ceiling128
    cold = results["cold_start"]["torchserve_start"]["median_s"]
    out.append(
        {
            "target": f"imdb instances of {INSTANCES}: >= 0.8 x ceiling(batch 128) x {results['cores']} cores",
            "measured": f"{inst:.2f}x ({ts['instances']['reviews_per_s']:,.0f} vs {ceiling128:,.0f} reviews/s)",
            "holds": inst >= 0.8,
        }
    )
    for mix in MIXES if "capture" in results else ():
        cost = results["capture"][mix]
        out.append(
            {
                "target": f"{mix}: capture costs <= 5 % of c=64 req/s",
                "measured": f"{cost['cost']:+.1%} ({cost['on']['req_per_s']:,.0f} vs {cost['off']['req_per_s']:,.0f})",
                "holds": cost["holds"],
            }
        )
    for run in results.get("evaluation_scale", {}).get("runs", []):
        if "job_ratio_to_unique" in run:
            out.append(
                {
                    "target": f"evaluation job: {run['n']:,} predictions on {run['keys']} keys <= 2x unique keys",
                    "measured": f"{run['job_ratio_to_unique']:.2f}x ({run['job_seconds']:.1f} s of job)",
                    "holds": run["holds"],
                }
            )
            continue
        out.append(
            {
                "target": f"evaluation job: {run['n']:,} predictions and labels < 60 s, Spark's start included",
                "measured": f"{run['seconds']:.1f} s (driver {run['driver_python_max_rss_mb']} MB)",
                "holds": run["holds"],
            }
        )
    out.append(
        {
            "target": "cold start: torchserve --start to first 200 < 10 s",
            "measured": f"{cold:.1f} s",
            "holds": cold < 10,
        }
    )
    return out


def serve_all(work: Path, mar: Path, seconds: float, repeats: int) -> dict:
    single = {mix: write_bodies(single_bodies(review_mix(mix, 1000)), work) for mix in MIXES}
    batched = write_bodies(instance_bodies(load_reviews(2000), INSTANCES), work)
    server = launch(work / "torchserve", mar)
    peers = {}
    try:
        for name, start in PEERS.items():
            peers[name] = start(unpack(mar, work / f"{name}-model"))
        stacks = {"torchserve": Target("torchserve", server.client.inference_url, server.token)}
        stacks.update({name: Target(name, p.base_url, p.token) for name, p in peers.items()})
        raw = {name: {"single": {(m, c): [] for m in MIXES for c in CONCURRENCY}, "instances": []} for name in stacks}
        for target in stacks.values():  # the JVM's JIT compiler and the workers' first batches
            for path in single.values():
                warm_up(target, path, 5.0)
        for repeat in range(repeats):
            for name, target in stacks.items():
                logger.info("repeat %d/%d: %s", repeat + 1, repeats, name)
                for mix in MIXES:
                    for c in CONCURRENCY:
                        raw[name]["single"][(mix, c)].append(one_cell(target, single[mix], c, seconds))
                raw[name]["instances"].append(one_cell(target, batched, INSTANCE_CONNECTIONS, seconds))
    finally:
        for peer in peers.values():
            peer.stop()
        server.stop()
    out = {}
    for name, cells in raw.items():
        inst = median_cell(cells["instances"])
        inst["reviews_per_s"] = inst["ok_per_s"] * INSTANCES
        single_rows = {mix: [median_cell(cells["single"][(mix, c)]) for c in CONCURRENCY] for mix in MIXES}
        out[name] = {"single": single_rows, "instances": inst}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of one wrk cell")
    parser.add_argument("--repeats", type=int, default=3, help="cells per load level and stack (medians)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--skip-clone", action="store_true", help="skip `make serve` from a clone")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = ROOT / "bench" / "tmp" / time.strftime("run-%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    results: dict = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "load_before": load_average()},
        "knobs": shipped_knobs(),
        "seconds_per_cell": args.seconds,
        "repeats": args.repeats,
        "instances_size": INSTANCES,
        "instances_connections": INSTANCE_CONNECTIONS,
        "mixes": {
            "imdb": "whole IMDB reviews, one per request (unsup split, mean ~1,340 characters)",
            "sentence": "the first sentence of each of those reviews (mean ~100 characters)",
        },
    }
    mar = archive(work)
    logger.info("ceiling (in-process, one torch thread)")
    model_dir = unpack(mar, work / "ceiling-model")
    results["ceiling"] = {mix: ceiling(model_dir, single_bodies(review_mix(mix, 1000))) for mix in MIXES}
    logger.info("TorchServe, the FastAPI peer and LitServe, alternating cells")
    results.update(serve_all(work, mar, args.seconds, args.repeats))
    logger.info("capture on vs off, alternating cells")
    results["capture"] = capture_cost.measure(work / "capture", args.seconds, args.repeats)
    logger.info("the evaluation job on 1M captured predictions and 1M labels")
    results["evaluation_scale"] = evaluation_scale.measure([1_000_000], mar)
    logger.info("cold start")
    results["cold_start"] = {"torchserve_start": cold_start.torchserve_start(work / "cold", mar)}
    if not args.skip_clone:
        cells = [cold_start.make_serve_from_clone(work / "cold")["total_s"] for _ in range(2)]
        results["cold_start"]["make_serve_from_clone"] = {
            "median_s": statistics.median(cells),
            "cells_s": cells,
            "includes": "archive build (a clone has no .mar), torchserve start, first 200",
        }
    results["machine"]["load_after"] = load_average()
    results["targets"] = targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    png = plot(results, args.out.with_suffix(".png"))
    shutil.rmtree(work, ignore_errors=True)
    from bench.report import main as report

    report([str(args.out)])
    print(f"\nresults: {args.out}\nplot:    {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
