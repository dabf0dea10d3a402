"""The logistic function (model.logit.sigmoid over arrays, tests/unit/test_logit.py) and the log loss, as pure
numpy functions: the bundle build and the two-phase report measure the one calibration the product fits
(model/platt.py, calibration.json) with them and with model/ece.py's expected calibration error. The
two-phase threshold is model/threshold.py's."""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))  # stable for any |z|


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
