"""The run directory: metrics.parquet (one row per window x model x version), report.json, alerts.json,
report.html.

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
from model.baseline import SCORE_BINS
from model.ece import ECE_BINS

logger = logging.getLogger(__name__)
LATEST = "latest"


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(
    stats: dict[tuple[int, str, str], Stats],
    baselines: dict[tuple[str, str], dict | None],
    window_s: int,
    min_labels: int,
) -> list[dict]:
    """The metrics table: one dict per window x model x version, in time order."""
    out = []
    for (window, name, version), s in sorted(stats.items()):
        baseline = baselines.get((name, version))
        row = {
            "window_start": iso(window),
            "window_end": iso(window + window_s),
            "window_seconds": window_s,
            "model_name": name,
            "model_version": version,
            **finish(s, baseline, min_labels),
            "baseline_accuracy": baseline["accuracy"] if baseline else None,
        }
        out.append(row)
    return out


def label(model: tuple[str, str]) -> str:
    """How a model version is named in the report: `sentiment 1.0`."""
    return f"{model[0]} {model[1]}"


def reliability(stats: dict[tuple[int, str, str], Stats]) -> dict[str, list[dict]]:
    """Per model version, over every labeled window: mean probability, observed positive rate and count per bin."""
    out: dict[str, list[dict]] = {}
    for (_, *model), s in stats.items():
        bins = out.setdefault(label(model), [{"n": 0, "p": 0.0, "y": 0} for _ in range(ECE_BINS)])
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


def score_histograms(stats: dict[tuple[int, str, str], Stats]) -> dict[str, dict]:
    """Per model version, the fine score histogram of its latest window (the score plot compares it with its
    baseline)."""
    latest: dict[str, tuple[int, Stats]] = {}
    for (window, *model), s in stats.items():
        name = label(model)
        if s.answered >= 100 and (name not in latest or window > latest[name][0]):
            latest[name] = (window, s)
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

    `baselines` is keyed by the report's model label (`label`). Windows with fewer than `min_predictions` answered
    predictions (a readiness probe, say) are left out of the estimate and drift lines, as the alert rules leave
    them out. Every axis spans the data's own windows and every legend names only what is drawn: one window of
    traffic makes one point on an axis of a few hours, not an empty axis of years."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    models = sorted({(r["model_name"], r["model_version"]) for r in table})
    when = {r["window_start"]: dt.datetime.fromisoformat(r["window_start"].replace("Z", "+00:00")) for r in table}
    window_s = table[0]["window_seconds"] if table else 86400

    def series(model: tuple[str, str], keep) -> list[dict]:
        return [r for r in table if (r["model_name"], r["model_version"]) == model and keep(r)]

    def time_axis(ax, shown: list[dict]) -> None:
        if not shown:
            return
        times = sorted(when[r["window_start"]] for r in shown)
        pad = dt.timedelta(seconds=window_s / 2)
        ax.set_xlim(times[0] - pad, times[-1] + pad)

    fig, ax = plt.subplots(figsize=(11, 4))
    shown = []
    for i, model in enumerate(models):
        name = label(model)
        labeled = series(model, lambda r: r["accuracy"] is not None)
        if labeled:
            x = [when[r["window_start"]] for r in labeled]
            y = [r["accuracy"] for r in labeled]
            err = [
                [r["accuracy"] - r["accuracy_low"] for r in labeled],
                [r["accuracy_high"] - r["accuracy"] for r in labeled],
            ]
            ax.errorbar(x, y, yerr=err, fmt="o", color=f"C{i}", capsize=3, label=f"{name} accuracy (95 % Wilson)")
        estimated = series(model, lambda r: r["estimated_accuracy"] is not None and _answered(r) >= min_predictions)
        if estimated:
            ax.plot([when[r["window_start"]] for r in estimated], [r["estimated_accuracy"] for r in estimated], "x--",
                    color=f"C{i}", label=f"{name} estimated (calibrated, no labels)")  # fmt: skip
        if (labeled or estimated) and baselines.get(name):
            ax.axhline(baselines[name]["accuracy"], color=f"C{i}", lw=0.8, ls=":", label=f"{name} validation")
        shown += labeled + estimated
    ax.set(ylabel="accuracy", title="Accuracy per window: realized with its interval, and estimated")
    time_axis(ax, shown)
    _legend(ax, "no window with labels or enough predictions yet", outside=True)
    fig.autofmt_xdate()
    out["accuracy"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(9, 3.5))
    centres = [(b + 0.5) / SCORE_BINS for b in range(SCORE_BINS)]
    for i, (name, hist) in enumerate(sorted(histograms.items())):
        n = sum(hist["counts"]) or 1
        ax.plot(centres, [c / n for c in hist["counts"]], color=f"C{i}", label=f"{name}, window {hist['window_start']}")
        if baselines.get(name):
            ax.plot(centres, baselines[name]["score_histogram"], color=f"C{i}", ls=":", label=f"{name} baseline")
    ax.set(xlabel="positive_review_probability", ylabel="share", title="Scores of the latest window vs baseline")
    _legend(ax, f"no window with {min_predictions} answered predictions yet")
    out["scores"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    for i, (name, curve) in enumerate(sorted(reliability_curves.items())):
        if curve:
            ax.plot([c["mean_probability"] for c in curve], [c["positive_rate"] for c in curve], "o-", color=f"C{i}",
                    label=name)  # fmt: skip
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Reliability (labeled)")
    _legend(ax, "no labeled prediction yet")
    out["reliability"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(11, 4))
    peak, shown = 0.5, []
    for i, model in enumerate(models):
        rows_ = series(model, lambda r: r["score_psi"] is not None and _answered(r) >= min_predictions)
        x = [when[r["window_start"]] for r in rows_]
        for metric, style in (("score_psi", "-o"), ("score_ks", "-s"), ("token_length_psi", "-^"),
                              ("unknown_fraction_psi", "-v"), ("positive_rate_change", "-x")):  # fmt: skip
            values = [abs(r[metric]) if r[metric] is not None else None for r in rows_]
            if not any(v is not None for v in values):
                continue
            peak = max([peak, *(v for v in values if v is not None)])
            ax.plot(x, values, style, color=f"C{i}", ms=3, lw=0.8, label=f"{label(model)} {metric}")
        shown += rows_
    ax.axhline(0.1, color="grey", lw=0.6, ls=":")
    ax.axhline(0.25, color="grey", lw=0.6, ls="--")
    ax.set_yscale("symlog", linthresh=0.1)  # PSI of a new register reaches 8; the 0.1 and 0.25 bands stay visible
    ax.set_ylim(0, peak * 2)
    ax.set(ylabel="statistic (symlog)", title="Drift against each version's baseline")
    time_axis(ax, shown)
    # beside the axes, not on them: ten lines of legend would hide the points they name
    _legend(ax, f"no window with a baseline and {min_predictions} answered predictions yet", outside=True)
    fig.autofmt_xdate()
    out["drift"] = _png(fig, plt)
    return out


def _legend(ax, empty: str, outside: bool = False) -> None:
    """The legend of what is drawn, or a sentence saying why nothing is."""
    if not ax.get_legend_handles_labels()[0]:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color="grey")
        return
    if outside:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=7, loc="best")


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
    ("model_name", "model"),
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
    alert_rows = (
        "".join(
            f"<tr class='{a['level']}'><td>{'active' if a['active'] else ''}</td><td>{a['level']}</td>"
            f"<td>{html.escape(a['model_name'])} {html.escape(a['model_version'])}</td><td>{a['rule']}</td>"
            f"<td>{html.escape(a['message'])}</td></tr>"
            for a in alerts
        )
        or "<tr><td colspan='5'>no alerts: no rule fired in any window</td></tr>"
    )
    figures = "".join(f"<h2>{name}</h2><img src='data:image/png;base64,{png}'>" for name, png in images.items())
    inputs = html.escape(json.dumps(report.get("inputs", {}), indent=1))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Sentiment model evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}.critical{{background:#fdd}}.warning{{background:#ffd}}</style></head>
<body><h1>Sentiment model evaluation</h1><p>Run {html.escape(report["run"]["started"])}, window
{report["run"]["window_seconds"]} s; exit status {report["run"]["exit_status"]}.</p>
<h2>Alerts</h2><table><tr><th></th><th>level</th><th>model</th><th>rule</th><th>what</th></tr>{alert_rows}</table>
{figures}<h2>Windows</h2><table><tr>{head}</tr>{body}</table><h2>Inputs</h2><pre>{inputs}</pre></body></html>
"""
