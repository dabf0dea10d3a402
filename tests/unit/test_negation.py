"""The negation suite (tests/unit/negation_cases.py) answered as the product serves it: the device bundle's
calibrated phase-1 answer, or phase 2's (the sentiment-bigram archive's TorchScript) when the bundle's threshold
defers the review, with the threshold edge.cascade applies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.cascade import defers
from edge.device import DeviceModel
from model.infer import load_scorer
from model.text import pack, token_ids
from tests.unit.negation_cases import CASES

# The share of the suite the served answer gets right with the shipped models (docs/model.md): a floor that a
# retrained model must keep. Short of the 0.9 aimed for: both models read at most three words in order, and
# where one strong word ("bad", "boring", "dull") outweighs the negation before it in their training data, they
# agree on the wrong answer.
SERVED_FLOOR = 0.81


@pytest.fixture(scope="module")
def answers(edge_bundle, bigram_model_dir) -> dict[str, np.ndarray]:
    texts = [text for text, _ in CASES]
    device = DeviceModel(edge_bundle)
    scores = device.score(texts)
    phase1 = np.array([s.logit >= 0 for s in scores])
    routed = np.array([defers(s.confidence, device.settings.threshold) for s in scores])
    served = load_scorer(bigram_model_dir)  # as the handler loads sentiment-bigram
    with torch.inference_mode():
        phase2 = served.model(*pack(token_ids(served.tokenizer, texts))).numpy() >= 0
    return {"phase1": phase1, "phase2": phase2, "served": np.where(routed, phase2, phase1), "routed": routed}


def test_the_suite_covers_each_construction_with_both_labels():
    words = ("not", "never", "no", "hardly", "but", "although", "despite", "very", "really", "extremely")
    for word in words:
        labels = {label for text, label in CASES if word in text.lower().replace(",", " ").split()}
        assert labels, word
    assert {label for _, label in CASES} == {0, 1} and len({text for text, _ in CASES}) == len(CASES)


def test_the_served_answer_keeps_the_floor(answers):
    expected = np.array([label for _, label in CASES]) == 1
    right = answers["served"] == expected
    wrong = [text for (text, _), ok in zip(CASES, right, strict=True) if not ok]
    assert right.mean() >= SERVED_FLOOR, f"{right.mean():.3f} right; wrong: {wrong}"


def test_the_cascade_answers_the_suite_at_least_as_well_as_phase_one(answers):
    expected = np.array([label for _, label in CASES]) == 1
    assert (answers["served"] == expected).mean() >= (answers["phase1"] == expected).mean()
