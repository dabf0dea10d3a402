"""The label rule's one home (model/logit.py): what the codec answers, the array forms and the rule agree."""

from __future__ import annotations

import numpy as np
import pytest

from handler import codec
from model import calibration, logit

LOGITS = [-800.0, -40.0, -1.5, -1e-300, 0.0, 1e-300, 1.5, 40.0, 800.0]


def test_the_codec_answers_with_the_one_rule():
    assert codec.sigmoid is logit.sigmoid and codec.label is logit.label


@pytest.mark.parametrize("x", LOGITS)
def test_the_label_follows_the_logit_and_agrees_with_the_probability(x):
    assert logit.label(x) == ("positive" if x >= 0 else "negative")
    assert logit.is_positive(x) == (logit.label(x) == "positive")
    p = logit.sigmoid(x)  # a logit a hair below 0 rounds to 0.5: the logit decides, never the rounded probability
    assert (p >= 0.5) if logit.is_positive(x) else (p <= 0.5)
    assert 0.0 <= p <= 1.0


def test_the_array_forms_agree_with_the_scalar_ones():
    xs = np.array(LOGITS + list(np.linspace(-30, 30, 601)))
    assert np.allclose(calibration.sigmoid(xs), [logit.sigmoid(float(x)) for x in xs], rtol=1e-12, atol=1e-15)
    assert list(logit.is_positive(xs)) == [logit.is_positive(float(x)) for x in xs]
