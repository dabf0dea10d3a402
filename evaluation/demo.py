"""The whole pattern end to end against a real TorchServe: `make evaluation-demo` (minutes).

    python -m evaluation.demo [--window 30] [--shifted 1500] [--out evaluation-demo/]

Simulated traffic with keys, in phases aligned to evaluation windows of `--window` seconds:
  A  in-domain: reviews of the IMDB validation split (never trained on)          served by 1.0
  B  the shift: opening sentences of other validation reviews; A's labels arrive  served by 1.0
  C  more shifted traffic; B's labels arrive                                      served by 1.0
     -> the gated retrain on B's labeled traffic: candidate 2.0, compared on B's latest 30 %, promoted if it wins
  D  more shifted traffic; C's labels arrive, then D's                            served by the default
The evaluation job runs after each phase (one Spark session for all), so each report shows what an operator
would have seen then. The summary (demo.json) quotes the figures README shows; the plots are the last report's.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

import yaml

from evaluation import feedback
from model.data import DATA_DIR, IMDB_TRAIN, book_split, read_jsonl
from serving.run.server import ROOT

logger = logging.getLogger(__name__)
BATCH = 100  # instances per request


def _validation() -> list[dict]:
    from model.config import ModelConfig

    return book_split(read_jsonl(DATA_DIR / IMDB_TRAIN), ModelConfig().val_every)[1]


def in_domain(n: int) -> list[dict]:
    """{key, text, label} from the IMDB validation split (the model never trained on it), from its start."""
    return [{"key": f"imdb-{r['id']}", "text": r["text"], "label": int(r["label"])} for r in _validation()[:n]]


# A sentence ends at . ! or ? followed by white space; the corpus's <br /> markup is a line break
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def opening_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.replace("<br />", " ").strip(), maxsplit=1)[0]


def shifted(n: int, offset: int = 0, min_words: int = 4) -> list[dict]:
    """{key, text, label}: the opening sentence of IMDB validation reviews, labelled with its review's label, from
    the split's end backwards (in_domain takes its start), `offset` onwards. The model learnt from both IMDB reviews
    and SST-2 phrases, so neither is a shift for it; a review's first sentence is short and often says little of
    the verdict (0.69 accuracy against 0.88 for whole reviews, on 1,200 of them), as a box's one-liners do."""
    rows = []
    for r in reversed(_validation()):
        text = opening_sentence(r["text"])
        if len(text.split()) >= min_words:
            rows.append({"key": f"opening-{r['id']}", "text": text, "label": int(r["label"])})
    return rows[offset : offset + n]


def send(client, rows: list[dict]) -> int:
    """Score every row through the inference API, keyed; returns how many were answered."""
    answered = 0
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        predictions = client.predict_many([{"key": r["key"], "text": r["text"]} for r in chunk])
        answered += sum(1 for p in predictions if "error" not in p)
    return answered


def feed(directory: Path, name: str, rows: list[dict]) -> None:
    """Ground truth arriving as a file: one JSONL file of labels per phase."""
    directory.mkdir(parents=True, exist_ok=True)
    now = time.time()
    with open(directory / f"{name}.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({"key": r["key"], "label": feedback.parse_label(r["label"]), "labeled_at": now}) + "\n")


def next_window(window_s: int) -> float:
    """Sleep until the next window starts; returns its start."""
    start = (int(time.time()) // window_s + 1) * window_s
    time.sleep(max(0.0, start - time.time()))
    return start


def capture_config(path: Path) -> Path:
    """The shipped model-config.yaml with review text captured (the retrain needs it)."""
    config = yaml.safe_load((ROOT / "model-config.yaml").read_text())
    config["handler"]["capture"]["capture_text"] = True
    path.write_text(yaml.safe_dump(config))
    return path


def summarize(table: list[dict], phases: dict[str, float], window_s: int) -> dict:
    """Per phase: its window's figures, per version."""
    out = {}
    for name, start in phases.items():
        start_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        rows = [r for r in table if r["window_start"] == start_iso]
        out[name] = {
            r["model_version"]: {
                k: r[k]
                for k in (
                    "predictions",
                    "labeled",
                    "accuracy",
                    "accuracy_low",
                    "accuracy_high",
                    "estimated_accuracy",
                    "score_psi",
                    "score_ks",
                    "positive_rate_change",
                    "token_length_psi",
                    "unknown_fraction_psi",
                    "verdict",
                )  # fmt: skip
            }
            for r in rows
        }
    return out


def run(out: Path, window_s: int, n_in: int, n_shift: int, epochs: int | None) -> dict:
    from batch.session import spark_session
    from evaluation import pipeline
    from evaluation.cli import spark_settings
    from evaluation.retrain import RetrainSettings
    from evaluation.retrain import run as retrain
    from evaluation.settings import EvaluationSettings
    from serving.build.archive import build
    from serving.run.server import launch

    out.mkdir(parents=True, exist_ok=True)
    labels = out / "feedback"
    mar = build("sentiment", "1.0", out / "archive", config_file=capture_config(out / "model-config.yaml"))
    phases_data = {
        "A": in_domain(n_in),
        "B": shifted(n_shift),
        "C": shifted(n_shift, n_shift),
        "D": shifted(n_shift // 2, 2 * n_shift),
    }
    spark, _ = spark_session(spark_settings("local[2]", {}, "sentiment-evaluation-demo"))
    server = launch(out / "torchserve", mar)
    summary: dict = {"window_seconds": window_s, "phases": {}, "evaluations": [], "retrain": None}
    starts: dict[str, float] = {}
    settings = EvaluationSettings(
        captures=server.workdir / "captures", feedback=labels, window_s=window_s, model_store=server.model_store,
        runs=out / "evaluation-runs", master=None,
    )  # fmt: skip

    def evaluate(after: str) -> None:
        outcome = pipeline.run(spark, settings)
        summary["evaluations"].append(
            {"after": after, "run_dir": str(outcome.run_dir), "exit_status": outcome.exit_status,
             "alerts": [a for a in outcome.alerts if a["active"]],
             "phases": summarize(outcome.table, starts, window_s)}
        )  # fmt: skip
        logger.info("evaluation after phase %s: exit status %d -> %s", after, outcome.exit_status, outcome.run_dir)

    try:
        for name, label_of in (("A", None), ("B", "A"), ("C", "B")):
            starts[name] = next_window(window_s)
            if label_of:
                feed(labels, label_of, phases_data[label_of])
            answered = send(server.client, phases_data[name])
            summary["phases"][name] = {"start": starts[name], "sent": len(phases_data[name]), "answered": answered}
            logger.info("phase %s: %d answered", name, answered)
            next_window(window_s)  # the phase's window closes before it is evaluated
            evaluate(name)
        decision = retrain(
            RetrainSettings(captures=settings.captures, feedback=labels, model_store=server.model_store,
                            runs=out / "retrain-runs", since=starts["B"], epochs=epochs, promote=True),
            server.client,
        )  # fmt: skip
        summary["retrain"] = {k: v for k, v in decision.__dict__.items()}
        starts["D"] = next_window(window_s)
        feed(labels, "C", phases_data["C"])
        answered = send(server.client, phases_data["D"])
        summary["phases"]["D"] = {"start": starts["D"], "sent": len(phases_data["D"]), "answered": answered}
        next_window(window_s)
        feed(labels, "D", phases_data["D"])
        evaluate("D")
        summary["default_version"] = server.client.default_version("sentiment")
    finally:
        server.stop()
        spark.stop()
    (out / "demo.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=30, help="evaluation window in seconds (one per phase)")
    parser.add_argument("--in-domain", type=int, default=2000, help="IMDB validation reviews in phase A")
    parser.add_argument("--shifted", type=int, default=1500, help="opening sentences in phases B and C (D: half)")
    parser.add_argument("--epochs", type=int, help="the candidate's training epochs (default: the model's)")
    parser.add_argument("--out", type=Path, default=ROOT / "evaluation-demo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    summary = run(args.out, args.window, args.in_domain, args.shifted, args.epochs)
    print(json.dumps({k: summary[k] for k in ("phases", "default_version")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
