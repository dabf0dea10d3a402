"""The two-phase threshold, as pure numpy functions: which answers phase 2 gets, how the threshold is chosen on the
validation split, and how that choice is judged out of sample. The bundle build and the report both call them.

Phase 1's confidence is max(p, 1 - p) of its calibrated probability (model/platt.py's calibration.json); the
threshold is read off the validation split's cascade curve (`select_threshold`). It never sees a test set (there
is none in the shared data). The shipped point measured on the split it was chosen on is in-sample, so the report
also cross-fits the same rule: chosen on one fixed half of the split, measured on the other, both ways
(`cross_fit`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


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


def select_threshold(confidences, phase1_correct, phase2_correct, tolerance: float) -> Point:
    """The shipped rule, on the reviews given: the point of their cascade curve with the smallest deferral whose
    accuracy is within `tolerance` of phase 2 alone on the same reviews. The bundle's threshold (on the whole
    validation split) and the cross-fit (on each half, thousands of times in its bootstrap) both come from here,
    so it reads the curve as arrays; tests/unit/test_cross_fit.py holds it to cascade_curve."""
    conf = np.asarray(confidences, dtype=np.float64)
    c1, c2 = np.asarray(phase1_correct, dtype=float), np.asarray(phase2_correct, dtype=float)
    n = len(conf)
    order = np.argsort(conf, kind="stable")
    sorted_conf = conf[order]
    accuracy = (c1.sum() + np.concatenate([[0.0], np.cumsum((c2 - c1)[order])])) / n  # the k least sure deferred
    separable = np.ones(n + 1, dtype=bool)  # a threshold cannot separate equal confidences
    separable[1:n] = sorted_conf[1:] != sorted_conf[:-1]
    k = int(np.flatnonzero(separable & (accuracy >= float(c2.mean()) - tolerance))[0])  # k = n always qualifies
    threshold = 0.5 if k == 0 else float(sorted_conf[k]) if k < n else 1.0
    return Point(threshold, k / n, float(accuracy[k]))


def halves(ids: list[str], seed: int = 0) -> np.ndarray:
    """Two fixed halves of a split: True for the half whose seeded sha256 of the review id sorts first. The same
    ids and seed always give the same halves, whatever their order."""
    digests = [hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in ids]
    first = np.zeros(len(ids), dtype=bool)
    first[sorted(range(len(ids)), key=digests.__getitem__)[: len(ids) // 2]] = True
    return first


@dataclass(frozen=True)
class CrossFit:
    thresholds: tuple[float, float]  # chosen on the first half (applied to the second), and the other way
    routed: np.ndarray  # per review: deferred by the threshold chosen on the other half
    correct: np.ndarray  # per review: the cascade's answer right under that routing

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def deferred(self) -> float:
        return float(self.routed.mean())


def cross_fit(confidences, phase1_correct, phase2_correct, first: np.ndarray, tolerance: float) -> CrossFit:
    """The rule chosen on each half and measured on the other: every review is judged by a threshold that never saw
    it, and the two halves pool into one out-of-sample accuracy and deferral."""
    conf = np.asarray(confidences, dtype=np.float64)
    c1, c2 = np.asarray(phase1_correct, dtype=bool), np.asarray(phase2_correct, dtype=bool)
    routed = np.zeros(len(conf), dtype=bool)
    thresholds = []
    for chosen_on in (first, ~first):
        threshold = select_threshold(conf[chosen_on], c1[chosen_on], c2[chosen_on], tolerance).threshold
        routed[~chosen_on] = deferred(conf[~chosen_on], threshold)
        thresholds.append(threshold)
    return CrossFit((thresholds[0], thresholds[1]), routed, np.where(routed, c2, c1))


def cross_fit_interval(
    confidences, phase1_correct, phase2_correct, first: np.ndarray, tolerance: float, draws: int = 2000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95 % percentile bootstrap intervals of the cross-fit accuracy and deferral: each draw resamples the reviews
    of each half and chooses both thresholds again, so the interval holds the choice's noise as well as the
    measurement's."""
    conf, c1, c2 = (np.asarray(a) for a in (confidences, phase1_correct, phase2_correct))
    rng = np.random.default_rng(seed)
    index = [np.flatnonzero(first), np.flatnonzero(~first)]
    accuracy, deferral = np.empty(draws), np.empty(draws)
    for d in range(draws):
        a, b = (rng.choice(i, size=len(i)) for i in index)
        rows = np.concatenate([a, b])
        fit = cross_fit(conf[rows], c1[rows], c2[rows], np.arange(len(rows)) < len(a), tolerance)
        accuracy[d], deferral[d] = fit.accuracy, fit.deferred
    return {
        "accuracy": tuple(float(x) for x in np.percentile(accuracy, [2.5, 97.5])),
        "deferred": tuple(float(x) for x in np.percentile(deferral, [2.5, 97.5])),
    }


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
