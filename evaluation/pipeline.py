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
from evaluation import job, models, report
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


def run(spark: SparkSession, settings: EvaluationSettings, spark_seconds: float = 0.0) -> Outcome:
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    rules = alert_rules.load(settings.alerts)
    known = models.load(settings.model_store, settings.model_name)
    inputs = job.Inputs(settings.captures, settings.feedback, settings.batch_outputs, settings.batch_key)
    aggregates = job.aggregate(spark, inputs, settings.window_s, known)
    versions = sorted({version for _, version in aggregates.stats})
    baselines = {v: known[v].baseline if v in known else None for v in versions}
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
        "versions": {
            v: {
                "archive": str(models.archives(settings.model_store, settings.model_name).get(v, "")) or None,
                "baseline": None if baselines[v] is None else _baseline_summary(baselines[v]),
                "calibration": None if v not in known or known[v].calibration is None else asdict(known[v].calibration),
            }
            for v in versions
        },
        "rules": {"min_labels": rules.min_labels, "min_predictions": rules.min_predictions, "max_p": rules.max_p},
        "windows": table,
        "alerts": {"fired": len(fired), "active_critical": exit_status == CRITICAL},
        "reliability": report.reliability(aggregates.stats),
    }
    histograms = report.score_histograms(aggregates.stats)
    images = report.plots(table, summary["reliability"], histograms, baselines, rules.min_predictions)
    run_dir = report.write(settings.runs, started, summary, table, fired_dicts, images)
    logger.info(
        "evaluated %d predictions in %d window(s) x version(s) in %.1f s: %d alert(s)%s -> %s",
        aggregates.counts.get("predictions", 0),
        len(table),
        seconds,
        len(fired),
        ", a critical one active" if exit_status else "",
        run_dir,
    )
    return Outcome(run_dir, exit_status, table, fired_dicts, aggregates.counts)


def _baseline_summary(baseline: dict) -> dict:
    keep = ("n", "accuracy", "ece", "calibrated_ece", "estimated_accuracy", "positive_rate")
    return {k: baseline[k] for k in keep if k in baseline}
