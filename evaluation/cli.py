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
    r.add_argument("--batch-key", default="key", help="the key column of batch outputs (default: key)")
    r.add_argument("--window", default="1d", help="window: 30s, 15m, 1h, 1d or seconds (default: 1d)")
    r.add_argument("--model-store", type=Path, default=Path("model_store"))
    r.add_argument("--model-name", help="evaluate only this model (default: every model in the captures and outputs)")
    r.add_argument("--runs", type=Path, default=Path("evaluation-runs"), help="where run directories go")
    r.add_argument("--alerts", type=Path, help="alert rules (default: evaluation/alerts.yaml)")
    r.add_argument("--master", help="Spark master URL (default: local[*], or spark-submit's)")
    r.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting")
    lab = sub.add_parser("label", help="append one label to the feedback directory")
    lab.add_argument("key")
    lab.add_argument("label", help="positive, negative, 1 or 0")
    lab.add_argument("--feedback", type=Path, default=Path("feedback"))
    lab.add_argument("--labeled-at", help="ISO 8601 time or epoch seconds (default: now)")
    t = sub.add_parser("retrain", help="train a candidate on labeled traffic; promote it only if it wins")
    t.add_argument("--captures", type=Path, default=Path("captures"))
    t.add_argument("--feedback", type=Path, default=Path("feedback"))
    t.add_argument("--batch-input", type=Path, action="append", default=[], help="JSONL batch input (key, text)")
    t.add_argument("--model-store", type=Path, default=Path("model_store"))
    t.add_argument("--runs", type=Path, default=Path("retrain-runs"))
    t.add_argument("--since", help="only traffic predicted since this ISO time or epoch (default: all)")
    t.add_argument("--holdout", type=float, default=0.3, help="latest share of labeled traffic compared on")
    t.add_argument("--alpha", type=float, default=0.05, help="McNemar significance the win needs")
    t.add_argument("--tolerance", type=float, default=0.01, help="validation accuracy the candidate may lose")
    t.add_argument("--epochs", type=int, help="training epochs (default: the model's own)")
    t.add_argument("--promote", action="store_true", help="register and make default if it wins")
    t.add_argument("--inference-url", default="http://127.0.0.1:8080")
    t.add_argument("--management-url", default="http://127.0.0.1:8081")
    t.add_argument("--key-file", type=Path, default=Path("key_file.json"))
    return p


def retrain(args: argparse.Namespace) -> int:
    from evaluation.retrain import RetrainSettings, run
    from serving.client.api import ServingClient

    settings = RetrainSettings(
        captures=args.captures, feedback=args.feedback, batch_inputs=tuple(args.batch_input),
        model_store=args.model_store, runs=args.runs, holdout=args.holdout,
        since=feedback.parse_time(args.since) if args.since else None, alpha=args.alpha,
        tolerance=args.tolerance, epochs=args.epochs, promote=args.promote, inference_url=args.inference_url,
        management_url=args.management_url, key_file=args.key_file,
    )  # fmt: skip
    client = ServingClient(args.inference_url, args.management_url, args.key_file) if args.promote else None
    decision = run(settings, client)
    print(f"{decision.run_dir}/decision.json: {decision.reason}", file=sys.stderr)
    return 0


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
        model_name=args.model_name,
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
        if args.command == "retrain":
            return retrain(args)
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
    from evaluation.pipeline import run

    inputs = [f"captures {settings.captures}", f"labels {settings.feedback}"]
    inputs += [f"batch output {p}" for p in settings.batch_outputs]
    say(f"evaluating {', '.join(inputs)} in windows of {settings.window_s} s"
        + (f", model {settings.model_name} only" if settings.model_name else ", every model"))  # fmt: skip
    say(f"starting Spark ({settings.master or 'spark-submit'}) ...")
    spark, startup = spark_session(spark_settings(settings.master, settings.conf))
    try:
        say(f"Spark up in {startup:.1f} s; reading, joining and aggregating ...")
        outcome = run(spark, settings, startup)
    finally:
        spark.stop()
    print(summary_text(outcome), file=sys.stderr)
    return outcome.exit_status


def say(text: str) -> None:
    print(f"evaluate: {text}", file=sys.stderr, flush=True)


def summary_text(outcome) -> str:
    """The end-of-run screen: per model version its counts, accuracy with interval and alerts; then the labels."""
    c = outcome.counts
    head = (
        f"{'model':<18} {'version':<16} {'predictions':>11} {'refused':>7} {'keyed':>7} {'joined':>7}  accuracy (95 %)"
    )
    lines = [f"evaluation run {outcome.run_dir}", head, "-" * len(head)]
    for m in outcome.models.values():
        t = m["totals"]
        accuracy = (
            f"{t['accuracy']:.4f} [{t['accuracy_low']:.4f}, {t['accuracy_high']:.4f}]" if t["accuracy"] is not None
            else "no labels"
        )  # fmt: skip
        alerts = f"{t['alerts']} alert(s)" if t["alerts"] else "no alerts"
        if t["active_critical"]:
            alerts += f", critical active: {', '.join(t['active_critical'])}"
        lines.append(
            f"{m['model_name']:<18} {m['model_version']:<16} {t['predictions']:>11} {t['errors']:>7} {t['keyed']:>7} "
            f"{t['labeled']:>7}  {accuracy}  {alerts}" + ("" if m["baseline"] else "  (no baseline)")
        )
    if not outcome.models:
        lines.append("no predictions found")
    bad = sum(c.get("bad_label_rows", {}).values())
    lines.append(
        f"labels: {c.get('label_rows', 0)} rows read, {bad} rejected {c.get('bad_label_rows') or ''}".rstrip()
        + f"; {c.get('labeled_keys', 0)} keys, {c.get('unmatched_label_keys', 0)} unmatched"
        + f"; {c.get('retries', 0)} retries, {c.get('torn_lines', 0)} torn lines"
    )
    lines.append(
        f"exit status {outcome.exit_status}" + (" (a critical alert is active)" if outcome.exit_status else "")
    )
    return "\n".join(lines)


def spark_settings(master: str | None, extra: dict[str, str], app: str = "sentiment-evaluation"):
    """The job's Spark session settings: UTC for label times without a zone (the shuffle partitions are
    batch.session's DEFAULTS, shared by both jobs), and no local tuning: that serves the batch job's Python
    workers, and this job has none; its work is the JVM's, which the tuning's C1-only JIT would slow down."""
    from batch.settings import SparkSettings

    conf = {"spark.sql.session.timeZone": "UTC", **extra}
    return SparkSettings(master, app, conf, local_tuning=False)
