"""Repeated wrk cells against one stack, reduced to medians."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from bench.wrk import run_wrk

PATH = "/predictions/sentiment"


@dataclass
class Target:
    name: str
    base_url: str
    token: str | None


def median_cell(cells: list[dict]) -> dict:
    """Each numeric field's median over the repeated cells; errors are summed, and the cells kept."""
    out = {k: statistics.median(c[k] for c in cells) for k in cells[0] if isinstance(cells[0][k], (int, float))}
    out["connections"] = cells[0]["connections"]
    out["errors"] = sum(c["errors"] for c in cells)
    out["requests"] = sum(c["requests"] for c in cells)
    out["cells"] = [{k: c[k] for k in ("req_per_s", "p50_ms", "p99_ms", "errors")} for c in cells]
    return out


def one_cell(target: Target, bodies: Path, connections: int, seconds: float) -> dict:
    return run_wrk(target.base_url, PATH, bodies, connections, seconds, target.token)


def warm_up(target: Target, bodies: Path, seconds: float = 3.0) -> None:
    one_cell(target, bodies, 16, seconds)
