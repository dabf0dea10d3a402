"""Calibration and the two-phase trade, as pure numpy functions: the bundle build and the report both call them.

Temperature scaling divides the logit by one number fitted on the validation split; the threshold is then read
off the validation split's cascade curve. Neither ever sees a test set (there is none in the shared data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ECE_BINS = 15  # the usual count (Guo et al. 2017); with 6,250 reviews each bin still holds hundreds


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))  # stable for any |z|


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 50) -> float:
    """The temperature T minimising the mean log-loss of sigmoid(logit / T).

    Newton's method on beta = 1/T: the log-loss is convex in beta, so it converges from beta = 1 in a few steps."""
    z, y = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    beta = 1.0
    for _ in range(steps):
        p = sigmoid(beta * z)
        grad = np.sum((p - y) * z)
        hess = np.sum(p * (1.0 - p) * z * z) + 1e-12
        step = grad / hess
        beta -= step
        if abs(step) < 1e-10:
            break
    if not beta > 0:
        raise ValueError("the logits anti-correlate with the labels: no positive temperature fits")
    return float(1.0 / beta)


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the predicted label's confidence max(p, 1 - p): the bin-weighted |accuracy - mean confidence|."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    conf = np.maximum(p, 1.0 - p)
    correct = (p >= 0.5).astype(int) == y
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def deferred(confidences: np.ndarray, threshold: float) -> np.ndarray:
    """Which answers go to phase 2: confidence below the threshold; from 1 up, every answer (even a confidence
    that rounds to 1.0 in floating point)."""
    confidences = np.asarray(confidences)
    if threshold >= 1.0:
        return np.ones(confidences.shape, dtype=bool)
    return confidences < threshold


@dataclass(frozen=True)
class Point:
    threshold: float
    deferred: float  # fraction of reviews sent to phase 2
    accuracy: float  # of the cascade's answers


def cascade_curve(confidences: np.ndarray, phase1_correct: np.ndarray, phase2_correct: np.ndarray) -> list[Point]:
    """Accuracy against fraction deferred at every threshold that changes the routing (each distinct
    confidence), from 0.5 (never defer) to 1 (always), in order of increasing deferral."""
    conf = np.asarray(confidences, dtype=np.float64)
    c1, c2 = np.asarray(phase1_correct, dtype=float), np.asarray(phase2_correct, dtype=float)
    order = np.argsort(conf, kind="stable")
    gain = np.concatenate([[0.0], np.cumsum((c2 - c1)[order])])  # accuracy change from deferring the k least sure
    n = len(conf)
    points = [Point(0.5, 0.0, float(c1.mean()))]
    sorted_conf = conf[order]
    for k in range(1, n + 1):
        if k < n and sorted_conf[k] == sorted_conf[k - 1]:
            continue  # a threshold cannot separate equal confidences
        threshold = float(sorted_conf[k]) if k < n else 1.0
        points.append(Point(threshold, k / n, float((c1.sum() + gain[k]) / n)))
    return points


def choose_threshold(points: list[Point], phase2_accuracy: float, tolerance: float) -> Point:
    """The point with the smallest deferral whose accuracy is within `tolerance` of phase 2 alone."""
    good = [p for p in points if p.accuracy >= phase2_accuracy - tolerance]
    return min(good, key=lambda p: (p.deferred, -p.accuracy))


def oracle_curve(phase1_correct: np.ndarray, phase2_correct: np.ndarray) -> list[tuple[float, float]]:
    """(deferred, accuracy) when exactly phase 1's mistakes are deferred, the ones phase 2 fixes first."""
    c1, c2 = np.asarray(phase1_correct, dtype=bool), np.asarray(phase2_correct, dtype=bool)
    n = len(c1)
    fixes, both_wrong = int(np.sum(~c1 & c2)), int(np.sum(~c1 & ~c2))
    base = int(c1.sum())
    return [(0.0, base / n), (fixes / n, (base + fixes) / n), ((fixes + both_wrong) / n, (base + fixes) / n)]


def bootstrap_interval(correct: np.ndarray, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of an accuracy, resampling reviews."""
    correct = np.asarray(correct, dtype=float)
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, len(correct), size=(draws, len(correct)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)
