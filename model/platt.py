"""Platt scaling of the model's logit, fitted on the validation split when the model is trained.

The evaluation estimates accuracy before any label arrives from calibrated probabilities (confidence-based
performance estimation): the mean over predictions of the calibrated probability that the predicted label is
right. That estimate is only as good as the calibration, so it is fitted on reviews the model never trained on
and shipped in the archive beside the model (calibration.json). Applying it needs no numpy or torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    slope: float  # calibrated logit = slope * logit + intercept: < 1 when the model is over-confident
    intercept: float  # shifts the decision threshold of the calibrated probability
    fitted_on: int  # validation reviews

    def probability(self, logit: float) -> float:
        z = self.slope * logit + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls(**json.loads(Path(path).read_text()))


def fit(logits: list[float], labels: list[int], iterations: int = 100, ridge: float = 1e-6) -> Calibration:
    """Logistic regression of the label on the logit (two parameters), by Newton's method."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    design = np.stack([x, np.ones_like(x)], axis=1)
    w = np.array([1.0, 0.0])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        gradient = design.T @ (p - y)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return Calibration(float(w[0]), float(w[1]), len(x))
