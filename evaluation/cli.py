"""Command line: python -m evaluation run|label ... (make evaluate runs `run`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from evaluation import feedback
from evaluation.settings import EvaluationSettings, parse_window

USAGE_ERROR = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluation", description="Continued Model Evaluation.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="evaluate captured predictions against labels -> evaluation-runs/<time>/")
    r.add_argument("--captures", type=Path, default=Path("captures"), help="capture directory (default: captures)")
    r.add_argument("--feedback", type=Path, default=Path("feedback"), help="label files (default: feedback)")
    r.add_argument("--batch-output", type=Path, action="append", default=[], help="a batch job's output directory")
    r.add_argument("--batch-key", default="id", help="the key column of batch outputs (default: id)")
    r.add_argument("--window", default="1d", help="window: 30s, 15m, 1h, 1d or seconds (default: 1d)")
    r.add_argument("--model-store", type=Path, default=Path("model_store"))
    r.add_argument("--runs", type=Path, default=Path("evaluation-runs"), help="where run directories go")
    r.add_argument("--alerts", type=Path, help="alert rules (default: evaluation/alerts.yaml)")
    r.add_argument("--master", help="Spark master URL (default: local[*], or spark-submit's)")
    r.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting")
    lab = sub.add_parser("label", help="append one label to the feedback directory")
    lab.add_argument("key")
    lab.add_argument("label", help="positive, negative, 1 or 0")
    lab.add_argument("--feedback", type=Path, default=Path("feedback"))
    lab.add_argument("--labeled-at", help="ISO 8601 time or epoch seconds (default: now)")
    return p


def settings_of(args: argparse.Namespace) -> EvaluationSettings:
    if any("=" not in item for item in args.conf):
        raise ValueError("--conf takes KEY=VALUE")
    from batch.session import under_spark_submit

    extra = {"alerts": args.alerts} if args.alerts else {}
    return EvaluationSettings(
        captures=args.captures,
        feedback=args.feedback,
        batch_outputs=tuple(args.batch_output),
        batch_key=args.batch_key,
        window_s=parse_window(args.window),
        model_store=args.model_store,
        runs=args.runs,
        master=args.master or (None if under_spark_submit() else "local[*]"),
        conf=dict(item.split("=", 1) for item in args.conf),
        **extra,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    try:
        if args.command == "label":
            when = feedback.parse_time(args.labeled_at) if args.labeled_at else None
            path = feedback.append(args.feedback, args.key, args.label, when)
            print(f"labeled {args.key!r} in {path}")
            return 0
        settings = settings_of(args)
        for path in (settings.model_store, settings.alerts):
            if not Path(path).exists():
                raise ValueError(f"{path} does not exist")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    return evaluate(settings)


def evaluate(settings: EvaluationSettings) -> int:
    from batch.session import spark_session
    from batch.settings import SparkSettings
    from evaluation.pipeline import run

    spark, startup = spark_session(SparkSettings(settings.master, "sentiment-evaluation", spark_conf(settings.conf)))
    try:
        outcome = run(spark, settings, startup)
    finally:
        spark.stop()
    active = [a for a in outcome.alerts if a["active"] and a["level"] == "critical"]
    print(
        f"{outcome.run_dir}: {len(outcome.table)} window(s) x version(s), {len(outcome.alerts)} alert(s)"
        + (f"; critical: {'; '.join(a['message'] for a in active)}" if active else ""),
        file=sys.stderr,
    )
    return outcome.exit_status


def spark_conf(extra: dict[str, str]) -> dict[str, str]:
    """The job's Spark settings: UTC for label times without a zone, few shuffle partitions for small groups."""
    return {"spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": "8", **extra}
