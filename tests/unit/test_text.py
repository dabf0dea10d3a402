"""One tokenization code path: training and serving produce identical token ids."""

from __future__ import annotations

import torch

from bench.reviews import load_reviews
from model.config import ModelConfig
from model.infer import load_scorer
from model.text import encode_batch, pack, token_ids
from tests.conftest import ROOT

ARTIFACTS = ROOT / "model" / "artifacts"


def test_training_and_serving_token_ids_are_identical(model_dir):
    texts = load_reviews(64)
    trained = load_scorer(ARTIFACTS)
    served = load_scorer(model_dir)  # the tokenizer files shipped inside the .mar
    max_tokens = ModelConfig.from_json(ARTIFACTS / "config.json").max_tokens
    ids_train, offsets_train = pack(token_ids(trained.tokenizer, texts, max_tokens))  # model.train's path
    ids_served, offsets_served = encode_batch(served.tokenizer, texts, served.max_tokens)  # the handler's path
    assert torch.equal(ids_train, ids_served) and torch.equal(offsets_train, offsets_served)


def test_markup_is_ignored_and_case_folded():
    tok = load_scorer(ARTIFACTS).tokenizer
    [a, b] = token_ids(tok, ["Great film.<br /><br />LOVED it", "great film. loved it"], 100)
    assert a == b
    assert tok.unk_token_id not in a


def test_long_reviews_are_truncated_not_refused():
    scorer = load_scorer(ARTIFACTS)
    [ids] = token_ids(scorer.tokenizer, ["word " * 10 * scorer.max_tokens], scorer.max_tokens)
    assert len(ids) == scorer.max_tokens


def test_offsets_mark_each_review():
    ids, offsets = pack([[5, 6, 7], [], [8]])
    assert ids.tolist() == [5, 6, 7, 8] and offsets.tolist() == [0, 3, 3]
