"""The whole evaluation in plain Python, for small inputs: the specification the Spark job is tested against.

Every figure is per window x model x version: a model's name is part of each capture record (and of its
partition's path), and two models never share a row, a baseline or a key's deduplication.

Predictions are capture records (evaluation.captures) or batch-job rows in the same shape; labels are rows with
`key`, `label`, `labeled_at`, and where they came from (`file`, `file_time`, `row`). The join rules:
  - error records count in the error rate of their window, and are never joined;
  - a prediction without a key counts in the traffic (drift, estimated accuracy) but cannot be joined;
  - keys are compared by evaluation.keys (one rule for online, batch and label keys of any type);
  - a key predicted several times by one model version (client retries) counts once in its quality metrics:
    its latest prediction (then the highest prediction id) is the one joined; the others are `retries`;
  - a key predicted by several models or versions is joined once by each: each is judged on it;
  - a joined prediction counts in the window of its own time, whenever its label arrived: a late label changes
    that window when the job runs again, and nothing else;
  - labels: see evaluation.feedback (latest wins; duplicates, conflicts and unmatched keys are counted);
  - an audited capture record (two-phase prediction: the device's confident answer, also sent to the server)
    adds two predictions of the same review under the server model's name: the device's, as version
    `device-<phase1_version>`, and the server's again, as `audited-<version>`, so that both models are judged on
    exactly the audited reviews.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from evaluation.feedback import parse_label, parse_time
from evaluation.keys import canonical
from evaluation.metrics import EPS, Stats, auc_from_value_counts, log_loss_term
from model import ece as calibration_error
from model.baseline import SCORE_BINS, bin_of, fine_bin
from model.logit import is_positive
from model.platt import Calibration

DEFAULT_MODEL = "sentiment"  # the model of a batch output or record that does not name one (older files)
DEVICE_PREFIX = "device-"  # + phase1_version: the device model's answers to audited reviews
AUDITED_PREFIX = "audited-"  # + the server's version: its answers to the same reviews


@dataclass(frozen=True)
class ArchiveReference:
    """What the evaluation knows of one version: its archive's baseline and calibration (None: not shipped)."""

    baseline: dict | None
    calibration: Calibration | None


@dataclass
class Labels:
    latest: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    bad: Counter = field(default_factory=Counter)  # reason -> rows
    duplicate_keys: int = 0  # keys labeled more than once
    conflicting_keys: int = 0  # ... with different labels


def window_of(seconds: float, window_s: int) -> int:
    return int(math.floor(seconds / window_s) * window_s)


def labels_of(rows: list[dict]) -> Labels:
    out = Labels(rows=len(rows))
    seen: dict[str, list[tuple[tuple, int]]] = {}
    for row in rows:
        key = canonical(row.get("key"))
        label = parse_label(row.get("label"))
        try:
            when = parse_time(row.get("labeled_at"))
        except (ValueError, TypeError, OverflowError):
            out.bad["unreadable labeled_at"] += 1
            continue
        if key is None:
            out.bad["missing key"] += 1
            continue
        if label is None:
            out.bad["unreadable label"] += 1
            continue
        order = (when if when is not None else row["file_time"], row["file"], row["row"])
        seen.setdefault(key, []).append((order, label))
    for key, labels in seen.items():
        out.latest[key] = max(labels)[1]
        if len(labels) > 1:
            out.duplicate_keys += 1
            out.conflicting_keys += len({lab for _, lab in labels}) > 1
    return out


def audit_rows(record: dict) -> list[dict]:
    """The predictions an audited capture record adds: the device's answer (its logit derived from its probability,
    clipped as the log loss clips it) and the server's answer again, each under a version of its own; none for
    any other record."""
    audit = record.get("audit")
    if not isinstance(audit, dict) or audit.get("phase1_probability") is None or audit.get("phase1_version") is None:
        return []
    p = audit["phase1_probability"]
    clipped = min(max(p, EPS), 1 - EPS)
    device = {
        **record,
        "model_version": DEVICE_PREFIX + audit["phase1_version"],
        "positive_review_probability": p,
        "positive_review_logits": math.log(clipped) - math.log(1 - clipped),
        "error": None,  # the device answered, whatever the server did
    }
    return [device, {**record, "model_version": AUDITED_PREFIX + record["model_version"]}]


def model_of(record: dict) -> tuple[str, str]:
    """(model name, version) of a prediction."""
    return record.get("model_name") or DEFAULT_MODEL, record["model_version"]


def evaluate(
    predictions: list[dict], label_rows: list[dict], window_s: int, models: dict[tuple[str, str], ArchiveReference]
) -> tuple[dict[tuple[int, str, str], Stats], dict]:
    """Stats per (window start, model, version), and the run's counts (report.json's `inputs`)."""
    predictions = [row for record in predictions for row in (record, *audit_rows(record))]
    labels = labels_of(label_rows)
    stats: dict[tuple[int, str, str], Stats] = {}
    latest: dict[tuple[str, str, str], dict] = {}
    keyed_answered = 0
    for record in predictions:
        model = model_of(record)
        when = parse_time(record["time"])
        s = stats.setdefault((window_of(when, window_s), *model), new_stats(models.get(model)))
        s.predictions += 1
        if record.get("error") is not None:
            s.errors += 1
            continue
        traffic(s, record, models.get(model))
        key = canonical(record.get("key"))
        if key is not None:
            keyed_answered += 1
            current = latest.get((key, *model))
            if current is None or (when, record["prediction_id"]) > (current["_t"], current["prediction_id"]):
                latest[(key, *model)] = {**record, "_t": when}
    auc_rows: dict[tuple[int, str, str], Counter] = {}
    matched: set[str] = set()
    for (key, *model), record in latest.items():
        group = (window_of(record["_t"], window_s), *model)
        s = stats[group]
        s.distinct_keys += 1
        label = labels.latest.get(key)
        if label is None:
            continue
        matched.add(key)
        joined(s, record, label, models.get(tuple(model)))
        auc_rows.setdefault(group, Counter())[(record["positive_review_probability"], label)] += 1
    for group, s in stats.items():
        counts = auc_rows.get(group, Counter())
        by_score: dict[float, list[int]] = {}
        for (p, y), c in counts.items():
            by_score.setdefault(p, [0, 0])[0 if y else 1] += c
        s.auc = auc_from_value_counts([(p, pos, neg) for p, (pos, neg) in by_score.items()])
    counts = {
        "predictions": len(predictions),
        "retries": keyed_answered - len(latest),
        "label_rows": labels.rows,
        "bad_label_rows": dict(labels.bad),
        "labeled_keys": len(labels.latest),
        "duplicate_label_keys": labels.duplicate_keys,
        "conflicting_label_keys": labels.conflicting_keys,
        "unmatched_label_keys": len(set(labels.latest) - matched),
    }
    return stats, counts


def new_stats(model: ArchiveReference | None) -> Stats:
    s = Stats()
    if model is not None and model.baseline is not None:
        s.score_bins = [0] * (len(model.baseline["score_edges"]) + 1)
        s.token_bins = [0] * (len(model.baseline["token_edges"]) + 1)
        s.unknown_bins = [0] * (len(model.baseline["unknown_edges"]) + 1)
    return s


def expected_correct(record: dict, model: ArchiveReference | None) -> float:
    """The calibrated probability that the predicted label is right (the raw probability without a calibration)."""
    logit = record["positive_review_logits"]
    p = model.calibration.probability(logit) if model and model.calibration else record["positive_review_probability"]
    return p if is_positive(logit) else 1 - p


def traffic(s: Stats, record: dict, model: ArchiveReference | None) -> None:
    """What every answered prediction adds: the positive rate, the estimate, the drift histograms."""
    p = record["positive_review_probability"]
    s.predicted_positive += is_positive(record["positive_review_logits"])
    c = expected_correct(record, model)
    s.estimated_correct_sum += c
    s.estimated_correct_sq_sum += c * c
    s.score_fine[fine_bin(p, SCORE_BINS)] += 1
    if model is not None and model.baseline is not None:
        b = model.baseline
        s.score_bins[bin_of(b["score_edges"], p)] += 1
        if record.get("tokens") is not None:  # batch outputs carry no token count
            s.token_bins[bin_of(b["token_edges"], float(record["tokens"]))] += 1
        s.unknown_bins[bin_of(b["unknown_edges"], record["unknown_token_fraction"])] += 1


def joined(s: Stats, record: dict, label: int, model: ArchiveReference | None) -> None:
    """What a labeled prediction adds: the confusion matrix, log loss, Brier score and calibration bins."""
    p = record["positive_review_probability"]
    predicted = is_positive(record["positive_review_logits"])
    s.labeled += 1
    s.tp += predicted and label == 1
    s.fp += predicted and label == 0
    s.tn += (not predicted) and label == 0
    s.fn += (not predicted) and label == 1
    s.log_loss_sum += log_loss_term(p, label)
    s.brier_sum += (p - label) ** 2
    s.estimated_labeled_sum += expected_correct(record, model)
    b = calibration_error.bin_of(p)
    s.ece_count[b] += 1
    s.ece_prob_sum[b] += p
    s.ece_label_sum[b] += label
