"""The baseline the evaluation compares traffic with, computed on the validation split when the model is trained.

    python -m model.baseline [--artifacts model/artifacts] [--data-dir DIR]

writes baseline.json and calibration.json beside the model (`make train` does it; serving.build.archive ships both).
The baseline holds what drift is measured against: the validation scores' deciles and a fine histogram, the
positive rate, the token-length and unknown-token distributions, and the validation accuracy and calibration error.
Bins are assigned by one rule everywhere (`bin_of`: the number of edges <= x), so the baseline, the Spark job and
the plain-Python reference agree.
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import math
from pathlib import Path

from model.config import ARTIFACTS
from model.ece import expected_calibration_error
from model.logit import is_positive, sigmoid
from model.platt import CALIBRATION_FILE, Calibration, fit

logger = logging.getLogger(__name__)
BASELINE_FILE = "baseline.json"
SCORE_BINS = 100  # uniform bins of the probability: the KS statistic and the plots
# Fixed edges for the unknown-token fraction: most in-domain reviews sit at a few per cent, and drift shows as mass
# moving into the upper bins (another language, another domain's words).
UNKNOWN_EDGES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def bin_of(edges: list[float] | tuple[float, ...], x: float) -> int:
    """The bin of `x` among len(edges) + 1 bins: how many edges are <= x."""
    return bisect.bisect_right(edges, x)


def fine_bin(p: float, bins: int = SCORE_BINS) -> int:
    return min(int(p * bins), bins - 1)


def quantile_edges(values: list[float], parts: int = 10) -> list[float]:
    """The inner edges that cut `values` into `parts` bins of about equal mass (distinct edges only)."""
    ordered = sorted(values)
    edges = [ordered[min(len(ordered) - 1, math.ceil(len(ordered) * q / parts) - 1)] for q in range(1, parts)]
    out: list[float] = []
    for edge in edges:  # an edge equal to the previous one would make an empty bin
        if not out or edge > out[-1]:
            out.append(edge)
    return out


def fractions(edges, values) -> list[float]:
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bin_of(edges, v)] += 1
    return [c / len(values) for c in counts]


def build(logits: list[float], tokens: list[int], unknown: list[int], labels: list[int], cal: Calibration) -> dict:
    probs = [sigmoid(x) for x in logits]
    score_edges = quantile_edges(probs)
    token_edges = quantile_edges([float(t) for t in tokens])
    unknown_fraction = [u / t if t else 1.0 for u, t in zip(unknown, tokens, strict=True)]
    correct = [int(is_positive(x) == bool(y)) for x, y in zip(logits, labels, strict=True)]
    calibrated = [cal.probability(x) for x in logits]
    return {
        "n": len(logits),
        "accuracy": sum(correct) / len(correct),
        "ece": expected_calibration_error(probs, labels),
        "calibrated_ece": expected_calibration_error(calibrated, labels),
        "estimated_accuracy": sum(c if is_positive(x) else 1 - c for c, x in zip(calibrated, logits, strict=True))
        / len(probs),
        "positive_rate": sum(1 for x in logits if is_positive(x)) / len(logits),
        "label_positive_rate": sum(labels) / len(labels),
        "score_edges": score_edges,
        "score_fractions": fractions(score_edges, probs),
        "score_histogram": [c / len(probs) for c in _fine_counts(probs)],
        "token_edges": token_edges,
        "token_fractions": fractions(token_edges, [float(t) for t in tokens]),
        "unknown_edges": list(UNKNOWN_EDGES),
        "unknown_fractions": fractions(UNKNOWN_EDGES, unknown_fraction),
    }


def _fine_counts(probs: list[float]) -> list[int]:
    counts = [0] * SCORE_BINS
    for p in probs:
        counts[fine_bin(p)] += 1
    return counts


def write(artifacts: Path, data_dir: Path) -> dict:
    """Score the validation split with the exported model in `artifacts`; write baseline.json, calibration.json."""
    from model.config import ModelConfig
    from model.data import IMDB_TRAIN, book_split, read_jsonl
    from model.infer import load_scorer, score

    cfg = ModelConfig.from_json(artifacts / "config.json")
    _, val_rows = book_split(read_jsonl(data_dir / IMDB_TRAIN), cfg.val_every)
    scorer = load_scorer(artifacts)
    scores = []
    for start in range(0, len(val_rows), 512):
        scores += score(scorer, [r["text"] for r in val_rows[start : start + 512]])
    labels = [int(r["label"]) for r in val_rows]
    tokens, unknown = [s.tokens for s in scores], [s.unknown_tokens for s in scores]
    return save(artifacts, [s.logit for s in scores], tokens, unknown, labels)


def save(out: Path, logits: list[float], tokens: list[int], unknown: list[int], labels: list[int]) -> dict:
    """Fit the calibration and build the baseline of these scores (the validation split's, or a retrained
    version's recent traffic: evaluation.retrain.rebase); write both into `out`."""
    calibration = fit(logits, labels)
    baseline = build(logits, tokens, unknown, labels, calibration)
    calibration.save(out / CALIBRATION_FILE)
    (out / BASELINE_FILE).write_text(json.dumps(baseline, indent=1) + "\n")
    logger.info(
        "baseline of %d reviews: accuracy %.4f, ECE %.4f (calibrated %.4f), positive rate %.3f",
        baseline["n"],
        baseline["accuracy"],
        baseline["ece"],
        baseline["calibrated_ece"],
        baseline["positive_rate"],
    )
    return baseline


def main() -> None:
    from model.data import DATA_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    write(args.artifacts, args.data_dir)


if __name__ == "__main__":
    main()
