"""`make bench-frontend`: what a request costs around the model, and the settings that might cut it, side by side.

    python -m bench.frontend [--seconds 10] [--rounds 3] [--variants shipped,wire,wire+serial-gc,...]

Each variant is a TorchServe started from the shipped config.properties and archive with some knobs changed,
under a fixed wrk load: single sentence-length reviews at c=64 (where per-request costs dominate), then a c=1
cell for the lone request's latency. Over the c=64 cell it reads from /proc the CPU seconds of the JVM (every
thread) and of the Python workers, and divides by the requests answered: CPU per request is steadier than req/s
on a shared machine. `shipped` is the server as shipped before the buffered worker protocol (TorchServe's own
protocol code, SENTIMENT_WORKER_PROTOCOL=torchserve); `wire` is the handler's buffered protocol (handler/wire.py,
on by default); every other knob is a candidate, kept in config.properties only once a quiet run shows it pays.
Variants run in a new order every round, each on a fresh server, so drift spreads over all of them; figures
are medians over rounds. Loopback only, bounded in time; results -> bench/results/frontend.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from bench import wire_cost
from bench.cells import Target, one_cell, warm_up
from bench.reviews import review_mix, single_bodies
from bench.stacks import archive
from bench.wrk import write_bodies
from handler import wire
from serving.run.server import ROOT, absolute_paths, launch, read_properties, server_pid

logger = logging.getLogger(__name__)
RESULTS = ROOT / "bench" / "results"
CONNECTIONS = 64
CPU_TARGET = 0.75  # CPU per request at c=64, against `shipped` in the same run


@dataclass(frozen=True)
class Knob:
    """One candidate change: JVM flags, config.properties settings, frontend metrics left out of metrics.yaml."""

    why: str
    vm_flags: tuple[str, ...] = ()
    properties: dict = field(default_factory=dict)
    drop_metrics: tuple[str, ...] = ()


PER_REQUEST_LATENCY = ("ts_inference_latency_microseconds", "ts_queue_latency_microseconds", "QueueTime")
PER_REQUEST_COUNTS = ("ts_inference_requests_total", "Requests2XX", "Requests4XX", "Requests5XX")
KNOBS = {
    "wire": Knob("the handler's buffered worker protocol (handler/wire.py) instead of TorchServe's field-by-field"),
    "serial-gc": Knob(
        "one GC thread, no G1 barriers: short-lived request objects, a small heap", ("-XX:+UseSerialGC",)
    ),
    "parallel-gc": Knob("throughput collector: no G1 concurrent work or write barriers", ("-XX:+UseParallelGC",)),
    "c1-only": Knob("C1 only: no C2 compile threads on the cores the workers need", ("-XX:TieredStopAtLevel=1",)),
    "heap-256m": Knob("a fixed small heap: young collections stay short and cheap", ("-Xms256m", "-Xmx256m")),
    "netty-1": Knob(
        "one Netty event loop for the HTTP side and one for the workers' sockets (default: one per core each)",
        properties={"number_of_netty_threads": "1", "netty_client_threads": "1"},
    ),
    "no-latency-metrics": Knob(
        "the frontend's per-request latency metrics left out (metrics.yaml): TorchServe skips a metric it lacks",
        drop_metrics=PER_REQUEST_LATENCY,
    ),
    "no-request-metrics": Knob(
        "every per-request frontend metric left out: latencies and the request counters",
        drop_metrics=PER_REQUEST_LATENCY + PER_REQUEST_COUNTS,
    ),
    "no-system-metrics": Knob(
        "no system metrics: TorchServe starts a Python process every minute to collect them",
        properties={"disable_system_metrics": "true"},
    ),
}
DEFAULT_VARIANTS = (
    "shipped",
    "wire",
    *(f"wire+{name}" for name in KNOBS if name != "wire"),
)


def knobs_of(variant: str) -> list[Knob]:
    """'shipped' or knob names joined by '+', e.g. 'wire+serial-gc+netty-1'."""
    if variant == "shipped":
        return []
    names = variant.split("+")
    unknown = [n for n in names if n not in KNOBS]
    if unknown:
        raise ValueError(f"unknown knobs {unknown} in {variant!r}; known: shipped, {', '.join(KNOBS)}")
    return [KNOBS[n] for n in names]


def metrics_without(names: tuple[str, ...], out: Path) -> Path:
    """The shipped metrics.yaml without the frontend metrics `names`."""
    config = yaml.safe_load((ROOT / "metrics.yaml").read_text())
    for kind, metrics in config["ts_metrics"].items():
        config["ts_metrics"][kind] = [m for m in metrics if m["name"] not in names]
    out.write_text(yaml.safe_dump(config))
    return out


def settings_of(variant: str, work: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(environment, config.properties overrides) for a variant."""
    knobs = knobs_of(variant)
    env = {wire.SWITCH: wire.BUFFERED if KNOBS["wire"] in knobs else wire.TORCHSERVE}
    overrides: dict[str, str] = {}
    flags = [f for k in knobs for f in k.vm_flags]
    if flags:
        shipped = absolute_paths(read_properties(ROOT / "config.properties"), ROOT)["vmargs"]
        overrides["vmargs"] = " ".join([shipped, *flags])
    for knob in knobs:
        overrides.update(knob.properties)
    dropped = tuple(m for k in knobs for m in k.drop_metrics)
    if dropped:
        overrides["metrics_config"] = str(metrics_without(dropped, work / f"metrics-{len(dropped)}.yaml"))
    return env, overrides


def process_cpu(java: int) -> dict[str, float]:
    """CPU seconds (user + system) so far of the frontend JVM and of its Python workers, from /proc."""
    frontend = psutil.Process(java)
    workers = [p for p in frontend.children(recursive=True) if "model_service_worker" in " ".join(p.cmdline())]
    return {
        "java": sum(frontend.cpu_times()[:2]),
        "workers": sum(sum(p.cpu_times()[:2]) for p in workers),
    }


def one_server(variant: str, mar: Path, bodies: Path, work: Path, seconds: float, warmup: float) -> dict:
    """A fresh server of `variant`: warm-up, the c=64 cell with CPU read around it, the c=1 cell."""
    env, overrides = settings_of(variant, work)
    before_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the frontend passes its environment on to the workers
    try:
        # a short directory name: TorchServe's worker sockets live under it, and a Unix socket path is short
        server = launch(work / f"ts-{time.monotonic_ns() % 10**9}", mar, overrides)
    finally:
        for k, v in before_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        target = Target(variant, server.client.inference_url, server.token)
        warm_up(target, bodies, warmup)  # the JIT compiler and the workers' first batches
        java = server_pid(server.workdir)
        cpu_before = process_cpu(java)
        c64 = one_cell(target, bodies, CONNECTIONS, seconds)
        cpu_after = process_cpu(java)
        c1 = one_cell(target, bodies, 1, max(1.0, seconds / 2))
    finally:
        server.stop()
    answered = max(1, c64["requests"])
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
    return {
        "req_per_s": c64["req_per_s"],
        "p50_ms": c64["p50_ms"],
        "p99_ms": c64["p99_ms"],
        "errors": c64["errors"] + c1["errors"],
        "cpu_s": cpu,
        "cpu_us_per_request": {
            "java": 1e6 * cpu["java"] / answered,
            "workers": 1e6 * cpu["workers"] / answered,
            "total": 1e6 * (cpu["java"] + cpu["workers"]) / answered,
        },
        "c1_p50_ms": c1["p50_ms"],
        "c1_p99_ms": c1["p99_ms"],
    }


def summarize(cells: dict[str, list[dict]]) -> dict:
    """Medians per variant, and each variant's CPU per request against `shipped` (when it ran)."""
    out = {}
    for variant, runs in cells.items():
        row = {
            "req_per_s": statistics.median(r["req_per_s"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "c1_p50_ms": statistics.median(r["c1_p50_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "cpu_us_per_request": {
                k: statistics.median(r["cpu_us_per_request"][k] for r in runs) for k in ("java", "workers", "total")
            },
            "knobs": {n: KNOBS[n].why for n in ([] if variant == "shipped" else variant.split("+"))},
            "rounds": runs,
        }
        out[variant] = row
    if "shipped" in out:
        base = out["shipped"]
        for row in out.values():
            row["cpu_vs_shipped"] = row["cpu_us_per_request"]["total"] / base["cpu_us_per_request"]["total"]
            row["req_per_s_vs_shipped"] = row["req_per_s"] / base["req_per_s"]
            row["c1_p50_minus_shipped_ms"] = row["c1_p50_ms"] - base["c1_p50_ms"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the c=64 cell (c=1: half)")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds of load before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="servers per variant (medians)")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated; see KNOBS")
    parser.add_argument("--out", type=Path, default=RESULTS / "frontend.json")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    for variant in variants:
        knobs_of(variant)  # an unknown knob fails now, not minutes in
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = ROOT / "bench" / "tmp" / time.strftime("frontend-%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    bodies = write_bodies(single_bodies(review_mix("sentence", 1000)), work)
    mar = archive(work)
    load_before = [round(x, 2) for x in os.getloadavg()]
    cells: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
        for variant in order:
            logger.info("round %d/%d: %s", round_ + 1, args.rounds, variant)
            cells[variant].append(one_server(variant, mar, bodies, work, args.seconds, args.warmup))
    summary = summarize(cells)
    logger.info("the worker protocol alone, in process (bench.wire_cost)")
    protocol = wire_cost.measure()
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "load": f"single sentence-length reviews, c={CONNECTIONS} for {args.seconds} s, then c=1",
        "rounds": args.rounds,
        "variants": summary,
        "wire_cost": protocol,
    }
    if "shipped" in summary:
        best = min(summary, key=lambda v: summary[v]["cpu_vs_shipped"])
        results["target"] = {
            "target": f"CPU per request at c={CONNECTIONS} (sentences) <= {CPU_TARGET}x shipped's, same run",
            "best": best,
            "measured": round(summary[best]["cpu_vs_shipped"], 3),
            "holds": summary[best]["cpu_vs_shipped"] <= CPU_TARGET,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    for variant, row in summary.items():
        cpu = row["cpu_us_per_request"]
        print(
            f"{variant:34s} {row['req_per_s']:8,.0f} req/s  CPU/request {cpu['total']:6.0f} us "
            f"(JVM {cpu['java']:4.0f}, workers {cpu['workers']:4.0f})  {row.get('cpu_vs_shipped', 1):.3f}x shipped  "
            f"c=1 p50 {row['c1_p50_ms']:.2f} ms  errors {row['errors']}"
        )
    print(f"worker protocol alone, CPU per request: {protocol['cpu_us_per_request']}")
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
