"""Run Debian's wrk with a Lua script that prints one JSON line of results, and parse that line.

load.lua, for the benchmarks, has no per-response hook: wrk then skips parsing each answer into Lua, which would
cost its one thread throughput at high request rates. soak.lua counts every status, which a soak must.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

LOAD = Path(__file__).resolve().parent / "load.lua"
SOAK = Path(__file__).resolve().parent / "soak.lua"


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is missing: `make bench` installs it (apt-get install -y wrk)")
    return found


def write_bodies(bodies: list[bytes], directory: Path) -> Path:
    """One request body a line (JSON bodies hold no raw newline)."""
    fd, name = tempfile.mkstemp(suffix=".jsonl", dir=directory)
    with os.fdopen(fd, "wb") as f:
        for body in bodies:
            f.write(body.replace(b"\n", b" ") + b"\n")
    return Path(name)


def run_wrk(
    base_url: str,
    path: str,
    bodies_file: Path,
    connections: int,
    seconds: float,
    token: str | None,
    script: Path = LOAD,
    threads: int = 1,
) -> dict:
    """One cell: `connections` closed-loop clients for `seconds`; req/s, latency percentiles (ms), errors, and
    with soak.lua every status counted. One wrk thread by default: it costs little CPU beside the servers."""
    cmd = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base_url,
        "--",
        str(bodies_file),
        path,
    ]
    env = {**os.environ, "BENCH_TOKEN": token or ""}
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    raw = json.loads(next(line for line in out.splitlines() if line.startswith('{"requests"')))
    seconds_run = raw["duration_us"] / 1e6
    errors = sum(raw["errors"].values())
    return {
        "connections": connections,
        "seconds": seconds_run,
        "requests": raw["requests"],
        "req_per_s": raw["requests"] / seconds_run,
        "ok_per_s": (raw["requests"] - raw["errors"]["status"]) / seconds_run,
        "p50_ms": raw["latency_us"]["p50"] / 1000,
        "p90_ms": raw["latency_us"]["p90"] / 1000,
        "p99_ms": raw["latency_us"]["p99"] / 1000,
        "max_ms": raw["latency_us"]["max"] / 1000,
        "errors": errors,
        "error_kinds": {k: v for k, v in raw["errors"].items() if v},
        "statuses": raw.get("statuses", {}),
    }
