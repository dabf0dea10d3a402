"""The run directory: metrics.parquet (one row per window x version), report.json, alerts.json, report.html.

    evaluation-runs/<UTC time>/   and   evaluation-runs/latest -> <UTC time>

Written into a hidden staging directory and renamed into place, then `latest` is swapped atomically, so a reader
(a dashboard, Airflow) never sees half a run.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
import os
import shutil
from pathlib import Path

from evaluation.metrics import Stats, finish
from model.baseline import ECE_BINS, SCORE_BINS

logger = logging.getLogger(__name__)
LATEST = "latest"


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(stats: dict[tuple[int, str], Stats], baselines: dict[str, dict | None], window_s: int, min_labels: int):
    """The metrics table: one dict per window x version, in time order."""
    out = []
    for (window, version), s in sorted(stats.items()):
        baseline = baselines.get(version)
        row = {
            "window_start": iso(window),
            "window_end": iso(window + window_s),
            "window_seconds": window_s,
            "model_version": version,
            **finish(s, baseline, min_labels),
            "baseline_accuracy": baseline["accuracy"] if baseline else None,
        }
        out.append(row)
    return out


def reliability(stats: dict[tuple[int, str], Stats]) -> dict[str, list[dict]]:
    """Per version, over every labeled window: mean probability, observed positive rate and count per bin."""
    out: dict[str, list[dict]] = {}
    for (_, version), s in stats.items():
        bins = out.setdefault(version, [{"n": 0, "p": 0.0, "y": 0} for _ in range(ECE_BINS)])
        for b in range(ECE_BINS):
            bins[b]["n"] += s.ece_count[b]
            bins[b]["p"] += s.ece_prob_sum[b]
            bins[b]["y"] += s.ece_label_sum[b]
    curve = {}
    for version, bins in out.items():
        curve[version] = [
            {"mean_probability": b["p"] / b["n"], "positive_rate": b["y"] / b["n"], "n": b["n"]} for b in bins if b["n"]
        ]
    return curve


def score_histograms(stats: dict[tuple[int, str], Stats]) -> dict[str, dict]:
    """Per version, the fine score histogram of its latest window (what the score plot compares with baseline)."""
    latest: dict[str, tuple[int, Stats]] = {}
    for (window, version), s in stats.items():
        if s.answered >= 100 and (version not in latest or window > latest[version][0]):
            latest[version] = (window, s)
    return {v: {"window_start": iso(w), "counts": s.score_fine} for v, (w, s) in latest.items()}


def write(runs: Path, started: dt.datetime, report: dict, table: list[dict], alerts: list[dict], plots: dict) -> Path:
    """Write the run directory and point `latest` at it; returns its path."""
    runs = Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    name = started.strftime("%Y-%m-%dT%H-%M-%SZ")
    target = runs / name
    staging = runs / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _parquet(table, staging / "metrics.parquet")
    (staging / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (staging / "alerts.json").write_text(json.dumps(alerts, indent=1) + "\n")
    (staging / "report.html").write_text(render_html(report, table, alerts, plots))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    link = runs / f".{LATEST}.new"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(name)
    os.replace(link, runs / LATEST)
    return target


def _parquet(table: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(table[0]) if table else ["window_start", "model_version"]
    data = {c: [r.get(c) for r in table] for c in columns}
    pq.write_table(pa.table(data) if table else pa.table({c: pa.array([], pa.string()) for c in columns}), path)


# -- plots and HTML ---------------------------------------------------------------------------------------------
def plots(
    table: list[dict], reliability_curves: dict, histograms: dict, baselines: dict, min_predictions: int = 100
) -> dict[str, str]:
    """name -> PNG as base64: accuracy over time, scores vs baseline, reliability curve, drift indicators.

    Windows with fewer than `min_predictions` answered predictions (a readiness probe, say) are left out of the
    estimate and drift lines, as the alert rules leave them out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    versions = sorted({r["model_version"] for r in table})
    when = {r["window_start"]: dt.datetime.fromisoformat(r["window_start"].replace("Z", "+00:00")) for r in table}

    fig, ax = plt.subplots(figsize=(9, 4))
    for i, version in enumerate(versions):
        series = [r for r in table if r["model_version"] == version]
        labeled = [r for r in series if r["accuracy"] is not None]
        if labeled:
            x = [when[r["window_start"]] for r in labeled]
            y = [r["accuracy"] for r in labeled]
            below = [r["accuracy"] - r["accuracy_low"] for r in labeled]
            err = [below, [r["accuracy_high"] - r["accuracy"] for r in labeled]]
            ax.errorbar(x, y, yerr=err, fmt="o", color=f"C{i}", capsize=3, label=f"{version} accuracy (95 % Wilson)")
        estimated = [r for r in series if r["estimated_accuracy"] is not None and _answered(r) >= min_predictions]
        ax.plot(
            [when[r["window_start"]] for r in estimated],
            [r["estimated_accuracy"] for r in estimated],
            "x--",
            color=f"C{i}",
            label=f"{version} estimated (calibrated, no labels)",
        )
        if baselines.get(version):
            ax.axhline(baselines[version]["accuracy"], color=f"C{i}", lw=0.8, ls=":", label=f"{version} validation")
    ax.set(ylabel="accuracy", title="Accuracy per window: realized with its interval, and estimated")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    out["accuracy"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(9, 3.5))
    centres = [(b + 0.5) / SCORE_BINS for b in range(SCORE_BINS)]
    for i, (version, hist) in enumerate(sorted(histograms.items())):
        n = sum(hist["counts"]) or 1
        label = f"{version}, window {hist['window_start']}"
        ax.plot(centres, [c / n for c in hist["counts"]], color=f"C{i}", label=label)
        if baselines.get(version):
            ax.plot(centres, baselines[version]["score_histogram"], color=f"C{i}", ls=":", label=f"{version} baseline")
    ax.set(xlabel="positive_review_probability", ylabel="share", title="Scores of the latest window vs baseline")
    ax.legend(fontsize=7)
    out["scores"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    for i, (version, curve) in enumerate(sorted(reliability_curves.items())):
        ax.plot([c["mean_probability"] for c in curve], [c["positive_rate"] for c in curve], "o-", color=f"C{i}",
                label=version)  # fmt: skip
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Reliability (labeled)")
    ax.legend(fontsize=7)
    out["reliability"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(9, 4))
    peak = 0.5
    for i, version in enumerate(versions):
        series = [
            r
            for r in table
            if r["model_version"] == version and r["score_psi"] is not None and _answered(r) >= min_predictions
        ]
        x = [when[r["window_start"]] for r in series]
        for metric, style in (("score_psi", "-o"), ("score_ks", "-s"), ("token_length_psi", "-^"),
                              ("unknown_fraction_psi", "-v"), ("positive_rate_change", "-x")):  # fmt: skip
            values = [abs(r[metric]) if r[metric] is not None else None for r in series]
            peak = max([peak, *(v for v in values if v is not None)])
            ax.plot(x, values, style, color=f"C{i}", ms=3, lw=0.8, label=f"{version} {metric}")
    ax.axhline(0.1, color="grey", lw=0.6, ls=":")
    ax.axhline(0.25, color="grey", lw=0.6, ls="--")
    ax.set_yscale("symlog", linthresh=0.1)  # PSI of a new register reaches 8; the 0.1 and 0.25 bands stay visible
    ax.set_ylim(0, peak * 2)
    ax.set(ylabel="statistic (symlog)", title="Drift against each version's baseline")
    ax.legend(fontsize=6, ncol=2)
    fig.autofmt_xdate()
    out["drift"] = _png(fig, plt)
    return out


def _answered(row: dict) -> int:
    return row["predictions"] - row["errors"]


def _png(fig, plt) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


SHOWN = (
    ("window_start", "window"),
    ("model_version", "version"),
    ("predictions", "predictions"),
    ("error_rate", "errors"),
    ("labeled", "labeled"),
    ("accuracy", "accuracy"),
    ("accuracy_low", "low"),
    ("accuracy_high", "high"),
    ("estimated_accuracy", "estimated"),
    ("f1", "F1"),
    ("roc_auc", "AUC"),
    ("ece", "ECE"),
    ("score_psi", "score PSI"),
    ("score_ks", "KS"),
    ("token_length_psi", "tokens PSI"),
    ("unknown_fraction_psi", "unknown PSI"),
    ("verdict", "verdict"),
)


def render_html(report: dict, table: list[dict], alerts: list[dict], images: dict[str, str]) -> str:
    def cell(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in SHOWN)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c, _ in SHOWN) + "</tr>" for r in table)
    alert_rows = "".join(
        f"<tr class='{a['level']}'><td>{'active' if a['active'] else ''}</td><td>{a['level']}</td><td>{a['rule']}</td>"
        f"<td>{html.escape(a['message'])}</td></tr>"
        for a in alerts
    )
    figures = "".join(f"<h2>{name}</h2><img src='data:image/png;base64,{png}'>" for name, png in images.items())
    inputs = html.escape(json.dumps(report.get("inputs", {}), indent=1))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Sentiment model evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}.critical{{background:#fdd}}.warning{{background:#ffd}}</style></head>
<body><h1>Sentiment model evaluation</h1><p>Run {html.escape(report["run"]["started"])}, window
{report["run"]["window_seconds"]} s; exit status {report["run"]["exit_status"]}.</p>
<h2>Alerts</h2><table><tr><th></th><th>level</th><th>rule</th><th>what</th></tr>{alert_rows}</table>
{figures}<h2>Windows</h2><table><tr>{head}</tr>{body}</table><h2>Inputs</h2><pre>{inputs}</pre></body></html>
"""
