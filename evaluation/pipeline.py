"""One evaluation run: models -> Spark aggregation -> metrics rows -> alerts -> the run directory."""

from __future__ import annotations

import datetime as dt
import logging
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from evaluation import alerts as alert_rules
from evaluation import job, metrics, models, report
from evaluation.settings import EvaluationSettings

logger = logging.getLogger(__name__)
CRITICAL = 3  # the exit status when a critical alert is active: cron and Airflow act on it


@dataclass(frozen=True)
class Outcome:
    run_dir: Path
    exit_status: int
    table: list[dict]
    alerts: list[dict]
    counts: dict
    models: dict  # report.json's `models`: per model version, its archive, baseline and totals


def run(spark: SparkSession, settings: EvaluationSettings, spark_seconds: float = 0.0) -> Outcome:
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    rules = alert_rules.load(settings.alerts)
    known = models.load(settings.model_store, settings.model_name)
    archives = models.archives(settings.model_store, settings.model_name)
    logger.info(
        "baselines of %s from %s",
        ", ".join(f"{n} {v}" + ("" if m.baseline else " (none)") for (n, v), m in sorted(known.items())) or "no model",
        settings.model_store,
    )
    inputs = job.Inputs(
        settings.captures, settings.feedback, settings.batch_outputs, settings.batch_key, settings.model_name
    )
    aggregates = job.aggregate(spark, inputs, settings.window_s, known)
    evaluated = sorted({(name, version) for _, name, version in aggregates.stats})
    baselines = {m: known[m].baseline if m in known else None for m in evaluated}
    table = report.rows(aggregates.stats, baselines, settings.window_s, rules.min_labels)
    fired = alert_rules.evaluate(table, rules, baselines)
    exit_status = CRITICAL if alert_rules.critical_active(fired) else 0
    fired_dicts = alert_rules.as_dicts(fired)
    seconds = time.perf_counter() - clock
    summary = {
        "run": {
            "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(seconds, 2),
            "spark_start_seconds": round(spark_seconds, 2),
            "window_seconds": settings.window_s,
            "exit_status": exit_status,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
            "master": spark.sparkContext.master,
            "driver_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        },
        "inputs": aggregates.counts,
        "models": {
            report.label(m): {
                "model_name": m[0],
                "model_version": m[1],
                "archive": str(archives[m]) if m in archives else None,
                "baseline": None if baselines[m] is None else _baseline_summary(baselines[m]),
                "calibration": None if m not in known or known[m].calibration is None else asdict(known[m].calibration),
                "totals": totals(table, fired_dicts, m),
            }
            for m in evaluated
        },
        "rules": {"min_labels": rules.min_labels, "min_predictions": rules.min_predictions, "max_p": rules.max_p},
        "windows": table,
        "alerts": {"fired": len(fired), "active_critical": exit_status == CRITICAL},
        "reliability": report.reliability(aggregates.stats),
    }
    histograms = report.score_histograms(aggregates.stats)
    by_label = {report.label(m): b for m, b in baselines.items()}
    images = report.plots(table, summary["reliability"], histograms, by_label, rules.min_predictions)
    run_dir = report.write(settings.runs, started, summary, table, fired_dicts, images)
    logger.info(
        "evaluated %d predictions of %d model version(s) in %d window(s) in %.1f s: %d alert(s)%s -> %s",
        aggregates.counts.get("predictions", 0),
        len(evaluated),
        len({r["window_start"] for r in table}),
        seconds,
        len(fired),
        ", a critical one active" if exit_status else "",
        run_dir,
    )
    return Outcome(run_dir, exit_status, table, fired_dicts, aggregates.counts, summary["models"])


def totals(table: list[dict], alerts: list[dict], model: tuple[str, str]) -> dict:
    """One model version over all windows: what the end-of-run summary shows."""
    rows = [r for r in table if (r["model_name"], r["model_version"]) == model]
    right = sum(r["accuracy"] * r["labeled"] for r in rows if r["accuracy"] is not None)
    labeled = sum(r["labeled"] for r in rows)
    low, high = metrics.wilson(round(right), labeled)
    mine = [a for a in alerts if (a["model_name"], a["model_version"]) == model]
    return {
        "windows": len(rows),
        "predictions": sum(r["predictions"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "keyed": sum(r["keyed"] for r in rows),
        "labeled": labeled,
        "accuracy": right / labeled if labeled else None,
        "accuracy_low": low,
        "accuracy_high": high,
        "alerts": len(mine),
        "active_critical": sorted({a["rule"] for a in mine if a["active"] and a["level"] == "critical"}),
    }


def _baseline_summary(baseline: dict) -> dict:
    keep = ("n", "accuracy", "ece", "calibrated_ece", "estimated_accuracy", "positive_rate")
    return {k: baseline[k] for k in keep if k in baseline}
