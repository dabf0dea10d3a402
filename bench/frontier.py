"""The TorchServe 0.12 frontier: c=1 latency and c=64 throughput for maxBatchDelay x workers x torch threads.

    python -m bench.frontier [--seconds 5] [--repeats 2]     # writes bench/results/frontier.json

Each variant is the shipped archive with other model-config.yaml values (and, for the logging row, TorchServe's
built-in log4j2 configuration instead of ours). The peer runs throughout: its cells alternate with TorchServe's,
so each ratio compares cells measured side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import yaml

from bench.cells import Target, one_cell, warm_up
from bench.reviews import MIXES, review_mix, single_bodies
from bench.stacks import archive, start_peer, unpack
from bench.wrk import write_bodies
from serving.run.server import ROOT, launch

logger = logging.getLogger(__name__)
OUT = ROOT / "bench" / "results" / "frontier.json"
# (maxBatchDelay ms, workers, torch threads per worker, config.properties overrides, note)
VARIANTS = [
    (1, 2, 1, {"vmargs": ""}, "TorchServe's default logging"),
    (1, 2, 1, {}, ""),
    (0, 2, 1, {}, ""),
    (1, 1, 2, {}, ""),
    (0, 1, 2, {}, ""),
    (1, 4, 1, {}, ""),
]


def model_config(delay: int, workers: int, threads: int, out: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "model-config.yaml").read_text())
    cfg.update(minWorkers=workers, maxWorkers=workers, maxBatchDelay=delay)
    cfg["handler"]["torch_threads"] = threads
    out.write_text(yaml.safe_dump(cfg))
    return out


def registration(delay: int, workers: int) -> dict | None:
    """maxBatchDelay 0 only through the management API: TorchServe reads 0 in model-config.yaml (and in
    config.properties `models=`) as unset and uses 100 ms."""
    if delay > 0:
        return None
    return {"initial_workers": workers, "batch_size": 32, "max_batch_delay": delay}


def paired_cells(ts: Target, peer: Target, bodies: Path, seconds: float, repeats: int) -> dict:
    """c=1 and c=64 on TorchServe and the peer, cell after cell, so both see the same neighbours."""
    warm_up(ts, bodies, 2)
    cells: dict[str, list[dict]] = {"ts1": [], "peer1": [], "ts64": [], "peer64": []}
    for _ in range(repeats):
        for c in (1, 64):
            cells[f"ts{c}"].append(one_cell(ts, bodies, c, seconds))
            cells[f"peer{c}"].append(one_cell(peer, bodies, c, seconds))

    def med(name: str, field: str) -> float:
        return statistics.median(c[field] for c in cells[name])

    row = {
        "c1_p50_ms": med("ts1", "p50_ms"),
        "c1_p99_ms": med("ts1", "p99_ms"),
        "c64_req_per_s": med("ts64", "req_per_s"),
        "c64_p99_ms": med("ts64", "p99_ms"),
        "errors": sum(c["errors"] for c in cells["ts1"] + cells["ts64"]),
        "peer_c1_p50_ms": med("peer1", "p50_ms"),
        "peer_c64_req_per_s": med("peer64", "req_per_s"),
    }
    row["c1_vs_peer"] = row["c1_p50_ms"] / row["peer_c1_p50_ms"]
    row["c64_vs_peer"] = row["c64_req_per_s"] / row["peer_c64_req_per_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = ROOT / "bench" / "tmp" / time.strftime("frontier-%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    bodies = {mix: write_bodies(single_bodies(review_mix(mix, 1000)), work) for mix in MIXES}
    shipped = yaml.safe_load((ROOT / "model-config.yaml").read_text())
    base_mar = archive(work / "base")
    peer_server = start_peer(unpack(base_mar, work / "peer-model"))
    rows = []
    try:
        peer = Target("peer", peer_server.base_url, peer_server.token)
        for i, (delay, workers, threads, overrides, note) in enumerate(VARIANTS):
            logger.info("variant delay=%d workers=%d threads=%d %s", delay, workers, threads, note)
            vdir = work / f"v{i}"
            vdir.mkdir()
            mar = archive(vdir, model_config(delay, workers, threads, vdir / "model-config.yaml"))
            server = launch(vdir / "ts", mar, overrides, registration(delay, workers))
            try:
                ts = Target("torchserve", server.client.inference_url, server.token)
                cells = {mix: paired_cells(ts, peer, path, args.seconds, args.repeats) for mix, path in bodies.items()}
            finally:
                server.stop()
            is_shipped = (
                not overrides
                and delay == shipped["maxBatchDelay"]
                and workers == shipped["minWorkers"]
                and threads == shipped["handler"]["torch_threads"]
            )
            for mix in MIXES:
                row = {"mix": mix, "delay": delay, "workers": workers, "threads": threads, "note": note}
                rows.append({**row, "shipped": is_shipped, **cells[mix]})
                logger.info("%s", rows[-1])
    finally:
        peer_server.stop()
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds_per_cell": args.seconds,
        "repeats": args.repeats,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "mixes": {"imdb": "whole IMDB reviews (mean ~1,340 chars)", "sentence": "their first sentences (~100 chars)"},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    from bench.report import frontier_table

    for mix in MIXES:
        print(f"\n{mix}:\n" + frontier_table(result, mix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
