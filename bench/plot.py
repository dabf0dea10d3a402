"""Latency vs throughput: TorchServe and its peers per load level, and the TorchServe config frontier."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FRONTIER = Path(__file__).resolve().parent / "results" / "frontier.json"
COLOURS = {"torchserve": "tab:red", "peer": "tab:blue", "litserve": "tab:green"}
LABELS = {
    "torchserve": "TorchServe (shipped config)",
    "peer": "FastAPI + uvicorn, 2 workers",
    "litserve": "LitServe, 2 workers, batching",
}


def _curves(ax, results: dict, mix: str) -> None:
    for name in [n for n in LABELS if n in results]:
        rows = results[name]["single"][mix]
        x = [r["req_per_s"] for r in rows]
        ax.plot(x, [r["p50_ms"] for r in rows], "o-", color=COLOURS[name], label=f"{LABELS[name]}: p50")
        ax.plot(x, [r["p99_ms"] for r in rows], "^--", color=COLOURS[name], alpha=0.6, label=f"{LABELS[name]}: p99")
        for r in rows:
            ax.annotate(
                f"c={r['connections']}",
                (r["req_per_s"], r["p50_ms"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=8,
                color=COLOURS[name],
            )
    ax.set_yscale("log")
    ax.set_xlabel("single-review requests / s")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(f"{mix}: {results['mixes'][mix]}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _frontier(ax, frontier: dict) -> None:
    markers = {"sentence": "o", "imdb": "s"}
    for row in frontier["rows"]:
        x, y = row["c64_vs_peer"], row["c1_vs_peer"]
        ax.plot(x, y, markers[row["mix"]], color="tab:red" if row.get("shipped") else "tab:gray")
        label = f"{row['mix']}: {row['delay']} ms, {row['workers']}x{row['threads']}"
        ax.annotate(
            label + (" (default logging)" if row.get("note") else ""),
            (x, y),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=6,
        )
    ax.axvline(2.0, color="tab:green", linestyle=":")
    ax.axhline(2.5, color="tab:green", linestyle=":")
    ax.set_xlabel("c=64 req/s, TorchServe / peer (higher is better)")
    ax.set_ylabel("c=1 p50, TorchServe / peer (lower is better)")
    ax.set_title(
        "TorchServe 0.12: maxBatchDelay x workers x torch threads\n(target: right of and below the green lines)",
        fontsize=9,
    )
    ax.grid(True, alpha=0.3)


def plot(results: dict, out: Path) -> Path:
    frontier = json.loads(FRONTIER.read_text()) if FRONTIER.exists() else None
    mixes = list(results["torchserve"]["single"])
    fig, axes = plt.subplots(1, len(mixes) + (1 if frontier else 0), figsize=(6.5 * (len(mixes) + 1), 5.5))
    for ax, mix in zip(axes, mixes, strict=False):
        _curves(ax, results, mix)
    if frontier:
        _frontier(axes[-1], frontier)
    fig.suptitle(f"Latency vs throughput on 2 cores, {results['when']} (medians of {results['repeats']} cells)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> int:
    """Re-draw the plot of bench/results/latest.json (with frontier.json when present)."""
    results = FRONTIER.parent / "latest.json"
    print(plot(json.loads(results.read_text()), results.with_suffix(".png")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
