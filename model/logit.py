"""What the model's one output means, written once: a logit of the positive class, whose probability is the
logistic function of it and whose label is positive from 0 up (probability 0.5 and over).

Pure Python, no numpy or torch: the handler's codec re-exports it, so the device, which ships the codec, ships
this file with it. `is_positive` also works elementwise on numpy arrays and torch tensors. The Spark jobs write
the rule as a column expression over POSITIVE_FROM; the browser page (edge/web/app.js) keeps a JavaScript copy,
held to this one by the browser tests.
"""

from __future__ import annotations

import math

POSITIVE_FROM = 0.0  # the logit from which a review is positive: sigmoid(0) = 0.5


def sigmoid(logit: float) -> float:
    """Numerically stable logistic function."""
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    z = math.exp(logit)
    return z / (1.0 + z)


def is_positive(logit):
    """The label rule, for a float, or elementwise for an array or tensor."""
    return logit >= POSITIVE_FROM


def label(logit: float) -> str:
    return "positive" if is_positive(logit) else "negative"
