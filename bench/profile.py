"""Where the time goes under load: py-spy on one TorchServe worker, per-thread CPU of the Java frontend.

    python -m bench.profile [--mix sentence] [--connections 64] [--seconds 10]   # writes bench/results/profile.*

py-spy (bench/requirements.txt) samples the Python worker; the frontend's threads are read from /proc.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.cells import Target, one_cell, warm_up
from bench.reviews import review_mix, single_bodies
from bench.stacks import archive
from bench.wrk import write_bodies
from serving.run.server import ROOT, launch, server_pid

logger = logging.getLogger(__name__)
OUT = ROOT / "bench" / "results"


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process, from /proc/<pid>/task/*/stat (utime + stime)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[_family(name)] += (int(fields[11]) + int(fields[12])) / ticks
    return dict(out)


def _family(name: str) -> str:
    """Group numbered threads: 'W-9000-sentiment' -> 'W-*', 'epollEventLoopGroup-3-1' -> 'epollEventLoopGroup-3'."""
    if name.startswith("W-"):
        return "W-* (worker threads: batch aggregation, IPC, responses)"
    return name.rstrip("0123456789").rstrip("-") or name


def leaf_functions(raw: Path, top: int = 25) -> list[tuple[str, float]]:
    """Share of samples whose innermost Python frame is each function (py-spy --format raw)."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        counts[frames[-1]] += int(n)
        total += int(n)
    return [(name, round(n / total, 3)) for name, n in counts.most_common(top)]


def inclusive(raw: Path, names: tuple[str, ...]) -> dict[str, float]:
    """Share of samples that pass through a frame containing each of `names`."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        for name in names:
            if name in stack:
                counts[name] += int(n)
    return {name: round(counts[name] / total, 3) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mix", default="sentence")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--default-logging", action="store_true", help="TorchServe's built-in log4j2 config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = ROOT / "bench" / "tmp" / time.strftime("profile-%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    bodies = write_bodies(single_bodies(review_mix(args.mix, 1000)), work)
    server = launch(work / "ts", archive(work), {"vmargs": ""} if args.default_logging else None)
    try:
        target = Target("torchserve", server.client.inference_url, server.token)
        warm_up(target, bodies)
        java = server_pid(work / "ts")
        workers = [
            p for p in psutil.Process(java).children(recursive=True) if "model_service_worker" in " ".join(p.cmdline())
        ]
        raw = work / "py-spy.txt"
        spy = [sys.executable.replace("python", "py-spy"), "record", "--format", "raw", "-o", str(raw)]
        spy += ["--rate", "500", "-d", str(round(args.seconds)), "--pid", str(workers[0].pid)]
        before = thread_cpu(java)
        cpu_before = {p.pid: sum(p.cpu_times()[:2]) for p in workers}
        result: dict = {}
        load = threading.Thread(target=lambda: result.update(one_cell(target, bodies, args.connections, args.seconds)))
        load.start()
        subprocess.run(spy, check=True, capture_output=True)
        load.join()
        after = thread_cpu(java)
        workers_cpu = sum(sum(p.cpu_times()[:2]) - cpu_before[p.pid] for p in workers)
    finally:
        server.stop()
    java_threads = {k: round(after.get(k, 0) - before.get(k, 0), 2) for k in after}
    report = {
        "mix": args.mix,
        "logging": "TorchServe's built-in" if args.default_logging else "log4j2.xml (shipped)",
        "connections": args.connections,
        "seconds": args.seconds,
        "req_per_s": result.get("req_per_s"),
        "requests": result.get("requests"),
        "cpu_s": {"java_frontend": round(sum(java_threads.values()), 2), "python_workers": round(workers_cpu, 2)},
        "cpu_us_per_request": {
            "java_frontend": round(1e6 * sum(java_threads.values()) / max(1, result.get("requests", 1)), 1),
            "python_workers": round(1e6 * workers_cpu / max(1, result.get("requests", 1)), 1),
        },
        "java_threads_cpu_s": dict(sorted(java_threads.items(), key=lambda kv: -kv[1])[:12]),
        "python_worker_inclusive": inclusive(
            raw,
            (
                "sentiment_handler.py",  # the whole handler call
                "tokenize (",
                "forward (",
                "_decode (",
                "_answer (",
                "retrieve_msg (",  # TorchServe's protocol: reading the batch from the frontend's socket
                "create_predict_response (",  # TorchServe's protocol: writing the answers back
                "wire.py",  # the buffered protocol (handler/wire.py): reading batches, writing answers
                "add_time (",  # TorchServe's metric lines
                "info (",  # every log line the worker prints
            ),
        ),
        "python_worker_leaf": leaf_functions(raw),
    }
    suffix = "-default-logging" if args.default_logging else ""
    out = OUT / f"profile-{args.mix}-c{args.connections}{suffix}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
