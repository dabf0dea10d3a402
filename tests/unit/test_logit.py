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
def test_the_label_is_positive_exactly_when_the_probability_is_at_least_half(x):
    assert logit.label(x) == ("positive" if logit.sigmoid(x) >= 0.5 else "negative")
    assert logit.is_positive(x) == (logit.label(x) == "positive")
    assert 0.0 <= logit.sigmoid(x) <= 1.0


def test_the_array_forms_agree_with_the_scalar_ones():
    xs = np.array(LOGITS + list(np.linspace(-30, 30, 601)))
    assert np.allclose(calibration.sigmoid(xs), [logit.sigmoid(float(x)) for x in xs], rtol=1e-12, atol=1e-300)
    assert list(logit.is_positive(xs)) == [logit.is_positive(float(x)) for x in xs]
