"""How well a probability is calibrated (ECE, log loss), as pure numpy functions: the bundle build and the
two-phase report measure the one calibration the product fits (model/platt.py, calibration.json) with them.
The two-phase threshold is model/threshold.py's."""

from __future__ import annotations

import numpy as np

ECE_BINS = 15  # the usual count (Guo et al. 2017); with 6,250 reviews each bin still holds hundreds


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))  # stable for any |z|


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
