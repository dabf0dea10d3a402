"""Platt scaling of the model's logit, fitted on the validation split when the model is trained.

The evaluation estimates accuracy before any label arrives from calibrated probabilities (confidence-based
performance estimation): the mean over predictions of the calibrated probability that the predicted label is
right. That estimate is only as good as the calibration, so it is fitted on reviews the model never trained on
and shipped in the archive beside the model (calibration.json). Applying it needs no numpy or torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from model.logit import sigmoid

CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    slope: float  # calibrated logit = slope * logit + intercept: < 1 when the model is over-confident
    intercept: float  # shifts the decision threshold of the calibrated probability
    fitted_on: int  # validation reviews

    def probability(self, logit: float) -> float:
        return sigmoid(self.slope * logit + self.intercept)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls(**json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class PlattSettings:
    # L2 penalty's inverse strength on (slope, intercept), scikit-learn's C. On separable data (a retrain's
    # holdout can be 50 reviews, all ranked right) the unpenalised slope runs to infinity; C = 1 holds it to a few
    # units there, and on the thousands of validation reviews it moves the fit by less than the noise.
    C: float = 1.0
    max_iter: int = 1000  # lbfgs converges in tens of iterations on two parameters; a bound, not a tuning


PLATT = PlattSettings()


def fit(logits: list[float], labels: list[int], settings: PlattSettings = PLATT) -> Calibration:
    """Logistic regression of the label on the logit (slope and intercept): scikit-learn's, L2-regularised."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(logits, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(labels, dtype=np.int64)
    if len(set(y.tolist())) < 2:
        raise ValueError(f"Platt scaling needs reviews of both labels; all {len(y)} are labeled {int(y[0])}")
    model = LogisticRegression(C=settings.C, max_iter=settings.max_iter).fit(x, y)
    return Calibration(float(model.coef_[0, 0]), float(model.intercept_[0]), len(y))
