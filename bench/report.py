"""Markdown tables of a results file, for the README: `python -m bench.report [bench/results/latest.json]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    return f"{row['req_per_s']:,.0f} req/s, p50 {row['p50_ms']:.2f} / p99 {row['p99_ms']:.2f} ms, {row['errors']} err"


PEER_NAMES = {"peer": "FastAPI peer (2 uvicorn workers)", "litserve": "LitServe (2 workers, batching)"}


def serving_table(results: dict) -> str:
    ts = results["torchserve"]
    peers = [name for name in PEER_NAMES if name in results]
    lines = [
        "| reviews | load | TorchServe (shipped config) | "
        + " | ".join(PEER_NAMES[p] for p in peers)
        + " | "
        + " | ".join(f"TorchServe vs {p}" for p in peers)
        + " |",
        "|---|---|---|" + "---|" * (2 * len(peers)),
    ]
    for mix in ts["single"]:
        for i, t in enumerate(ts["single"][mix]):
            rows = [results[p]["single"][mix][i] for p in peers]
            ratios = [
                f"{t['req_per_s'] / r['req_per_s']:.2f}x req/s, {t['p50_ms'] / r['p50_ms']:.2f}x p50" for r in rows
            ]
            lines.append(
                f"| {mix} | c={t['connections']} | {_cell(t)} | "
                + " | ".join(map(_cell, rows))
                + " | "
                + " | ".join(ratios)
                + " |"
            )
    ti = ts["instances"]
    others = [results[p]["instances"] for p in peers]
    lines.append(
        f"| imdb | c={ti['connections']}, instances of {results['instances_size']} | {ti['reviews_per_s']:,.0f} "
        f"reviews/s, p50 {ti['p50_ms']:.1f} ms, {ti['errors']} err | "
        + " | ".join(
            f"{o['reviews_per_s']:,.0f} reviews/s, p50 {o['p50_ms']:.1f} ms, {o['errors']} err" for o in others
        )
        + " | "
        + " | ".join(f"{ti['reviews_per_s'] / o['reviews_per_s']:.2f}x" for o in others)
        + " |"
    )
    return "\n".join(lines)


def ceiling_table(results: dict) -> str:
    lines = [
        "| reviews | batch | items/s (1 core) | before (bench/baseline.py) | speedup (wall, CPU) | decode | tokenize "
        "| forward | sigmoid + encode |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mix, rows in results["ceiling"].items():
        for row in rows:
            s = row["split"]
            before = f"{row['before']['items_per_s']:,.0f}" if "before" in row else "-"
            speedup = f"{row['speedup']:.2f}x, {row['speedup_cpu']:.2f}x" if "speedup" in row else "-"
            lines.append(
                f"| {mix} | {row['batch']} | {row['items_per_s']:,.0f} | {before} | {speedup} | {s['decode']:.0%} | "
                f"{s['tokenize']:.0%} | {s['forward']:.0%} | {s['encode']:.0%} |"
            )
    return "\n".join(lines)


def targets_table(results: dict) -> str:
    lines = ["| target | measured | holds |", "|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['holds'] else 'no'} |")
    return "\n".join(lines)


def frontier_table(frontier: dict, mix: str) -> str:
    lines = [
        "| maxBatchDelay | workers x torch threads | c=1 p50 (peer) | c=64 req/s (peer) | c=1 p50 vs peer | "
        "c=64 req/s vs peer | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in frontier["rows"] if r["mix"] == mix):
        name = f"{row['workers']} x {row['threads']}" + (f" ({row['note']})" if row.get("note") else "")
        name += " **shipped**" if row.get("shipped") else ""
        lines.append(
            f"| {row['delay']} ms | {name} | {row['c1_p50_ms']:.2f} ms ({row['peer_c1_p50_ms']:.2f}) | "
            f"{row['c64_req_per_s']:,.0f} ({row['peer_c64_req_per_s']:,.0f}) | "
            f"{row['c1_vs_peer']:.2f}x | {row['c64_vs_peer']:.2f}x | {row['errors']} |"
        )
    return "\n".join(lines)


def frontend_table(frontend: dict) -> str:
    """bench/results/frontend.json (make bench-frontend): CPU per request at c=64 by variant."""
    lines = [
        "| variant | c=64 req/s | CPU per request: JVM + workers = total | vs shipped | c=1 p50 | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in frontend["variants"].items():
        cpu = row["cpu_us_per_request"]
        lines.append(
            f"| {name} | {row['req_per_s']:,.0f} | {cpu['java']:.0f} + {cpu['workers']:.0f} = {cpu['total']:.0f} µs | "
            f"{row.get('cpu_vs_shipped', 1.0):.3f}x | {row['c1_p50_ms']:.2f} ms | {row['errors']} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    results = json.loads(Path(argv[0] if argv else RESULTS).read_text())
    print(ceiling_table(results), serving_table(results), targets_table(results), sep="\n\n")
    frontier = RESULTS.parent / "frontier.json"
    if frontier.exists():
        data = json.loads(frontier.read_text())
        for mix in data["mixes"]:
            print(f"\nfrontier, {mix}:\n" + frontier_table(data, mix))
    frontend = RESULTS.parent / "frontend.json"
    if frontend.exists():
        print("\nfrontend (make bench-frontend):\n" + frontend_table(json.loads(frontend.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
