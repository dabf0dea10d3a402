"""Parity: the eager model and its TorchScript trace agree on real reviews of every length and batch size."""

from __future__ import annotations

import pytest
import torch

from bench.reviews import load_reviews
from model.config import ARTIFACTS
from model.export import load_eager
from model.infer import load_scorer
from model.text import encode_batch


@pytest.fixture(scope="module")
def models():
    return load_eager(ARTIFACTS), load_scorer(ARTIFACTS)


@pytest.mark.parametrize("batch_size", [1, 2, 7, 32, 100, 256])
def test_eager_equals_torchscript(models, batch_size):
    eager, scorer = models
    texts = load_reviews(256)[:batch_size]
    texts[0] = texts[0] * 20  # one review far beyond max_tokens: truncated identically
    ids, offsets = encode_batch(scorer.tokenizer, texts)
    with torch.no_grad():
        expected = eager(ids, offsets)
        actual = scorer.model(ids, offsets)
    assert actual.shape == (batch_size,)
    assert (expected - actual).abs().max().item() < 1e-5


def test_archive_holds_the_committed_model(models, model_dir):
    """What is deployed is what was exported: the .mar scores like model/artifacts."""
    _, scorer = models
    deployed = load_scorer(model_dir)
    texts = load_reviews(16)
    a = scorer.model(*encode_batch(scorer.tokenizer, texts))
    b = deployed.model(*encode_batch(deployed.tokenizer, texts))
    assert (a - b).abs().max().item() < 1e-6
