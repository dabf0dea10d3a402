"""The phase-2 model: eager == TorchScript, binarized uni+bigrams (and longer n-grams by BigramConfig.max_n) that
never span two reviews, one tokenizer, and an archive that differs from sentiment's only in its model (same
handler, codec and limits)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from bench.reviews import load_reviews
from model.bigram_net import ARTIFACTS, TORCHSCRIPT_FILE, BigramConfig, file_sha256, ngram_codes
from model.infer import load_scorer
from model.text import encode_batch, pack, token_ids
from model.train_bigram import kept_ngrams, load_eager, ngrams, to_net
from serving.build.archive import check_tokenizer
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def models(bigram_model_dir):
    return load_eager(ARTIFACTS), load_scorer(bigram_model_dir), bigram_model_dir


@pytest.mark.parametrize("batch_size", [1, 2, 7, 32, 100, 256])
def test_eager_equals_torchscript(models, batch_size):
    eager, scorer, _ = models
    texts = load_reviews(256)[:batch_size]
    texts[0] = texts[0] * 20  # far beyond max_tokens: truncated identically
    batch = encode_batch(scorer.tokenizer, texts)
    with torch.no_grad():
        expected, actual = eager(*batch), scorer.model(*batch)
    assert actual.shape == (batch_size,)
    assert (expected - actual).abs().max().item() < 1e-4


def test_empty_reviews_and_an_empty_batch_of_tokens_score_the_bias(models):
    eager, scorer, _ = models
    for batch in (pack([[], [5, 6], []]), pack([[]])):
        with torch.no_grad():
            logits = scorer.model(*batch)
        assert logits[0].item() == pytest.approx(eager.bias.item(), abs=1e-6)


def expected_logit(eager, ids: list[int]) -> float:
    """Wang & Manning's binarized features, by hand: bias + the weights of the distinct unigrams and known bigrams,
    over the square root of their count."""
    features = set(ids)
    for a, b in zip(ids, ids[1:], strict=False):
        code = a * eager.vocab_size + b
        at = int(torch.searchsorted(eager.codes, torch.tensor(code)))
        if at < len(eager.codes) and eager.codes[at].item() == code:
            features.add(eager.vocab_size + at)
    return eager.bias.item() + sum(eager.weight[f].item() for f in features) / max(len(features), 1) ** 0.5


def test_each_distinct_ngram_counts_once(models):
    eager, scorer, _ = models
    texts = ["the film the film the film", "the film", "not good , not good at all", "very good"]
    ids = token_ids(scorer.tokenizer, texts)
    with torch.no_grad():
        logits = scorer.model(*pack(ids)).tolist()
    assert logits == pytest.approx([expected_logit(eager, one) for one in ids], abs=1e-5)
    assert logits[0] != pytest.approx(logits[1], abs=1e-3)  # "film the" is a known bigram: it counts once


def test_bigrams_never_span_two_reviews(models):
    _, scorer, _ = models
    ids = token_ids(scorer.tokenizer, load_reviews(6))
    with torch.no_grad():
        together = scorer.model(*pack(ids))
        alone = torch.cat([scorer.model(*pack([one])) for one in ids])
    assert (together - alone).abs().max().item() < 1e-5


def test_pairs_and_triples_never_share_a_code_and_both_rules_agree():
    words = 50
    pair = ngram_codes(np.array([7, 9]), words, 2)
    triple = ngram_codes(np.array([0, 7, 9]), words, 3)  # the digits of the pair, after id 0 ([PAD])
    assert pair.tolist() == [7 * words + 9] and triple.tolist() == [words**2 + 7 * words + 9]
    ids = [3, 1, 4, 1, 5, 9, 2, 6]
    for n in (2, 3, 4):
        assert ngram_codes(np.array(ids), words, n).tolist() == ngram_codes(torch.tensor(ids), words, n).tolist()
        assert ngram_codes(np.array(ids[: n - 1]), words, n).tolist() == []  # shorter than n: none
    with pytest.raises(ValueError):
        ngram_codes(np.array(ids), 30_000, 5)  # beyond int64


def test_trigrams_are_traced_counted_once_and_kept_within_a_review():
    """A small uni/bi/trigram model, random weights: the trace equals the eager model and the features by hand."""
    words, rng = 40, np.random.default_rng(0)
    cfg = BigramConfig(vocab_size=words, max_n=3)
    reviews = [rng.integers(0, words, size).tolist() for size in rng.integers(0, 30, 60)]
    codes = kept_ngrams([ngrams(ids, words, 3) for ids in reviews], words, min_reviews=1)
    assert (codes >= words**2).any() and (codes < words**2).any()  # both orders in one table
    net = to_net(cfg, codes, rng.normal(size=words + len(codes)), 0.3)
    with torch.no_grad():
        traced = torch.jit.trace(net, pack(reviews[:5]))
    table = {int(code): words + at for at, code in enumerate(codes)}

    def by_hand(ids: list[int]) -> float:
        found = set(ids)
        for n in (2, 3):
            found |= {table[c] for c in ngram_codes(np.array(ids, dtype=np.int64), words, n).tolist() if c in table}
        return 0.3 + sum(net.weight[f].item() for f in found) / max(len(found), 1) ** 0.5

    batch = [*reviews[10:50], [], [1], [2, 3], reviews[5] * 3]  # empty and short reviews, repeated trigrams
    with torch.no_grad():
        eager, actual = net(*pack(batch)), traced(*pack(batch))
        alone = torch.cat([traced(*pack([one])) for one in batch])
    assert actual.tolist() == pytest.approx([by_hand(ids) for ids in batch], abs=1e-5)
    assert (eager - actual).abs().max().item() < 1e-6 and (alone - actual).abs().max().item() < 1e-5


def test_trained_with_the_served_tokenizer_and_accurate():
    cfg = BigramConfig.from_json(ARTIFACTS / "config.json")
    assert cfg.tokenizer_sha256 == file_sha256(ROOT / "model" / "artifacts" / "tokenizer" / "tokenizer.json")
    metrics = json.loads((ARTIFACTS / "metrics.json").read_text())
    assert metrics["val_accuracy"] >= 0.91 and metrics["sst2_dev_accuracy"] >= 0.82
    assert metrics["max_logit_gap_to_sklearn"] < 1e-3


def test_a_model_trained_with_another_tokenizer_is_not_archived(tmp_path):
    cfg = json.loads((ARTIFACTS / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "tokenizer_sha256": "0" * 64}))
    with pytest.raises(RuntimeError, match="make train-bigram"):
        check_tokenizer(tmp_path)


def test_the_archive_is_sentiments_but_for_the_model(models, model_dir):
    _, scorer, unpacked = models
    manifest = json.loads((unpacked / "MAR-INF" / "MANIFEST.json").read_text())["model"]
    assert manifest["serializedFile"] == TORCHSCRIPT_FILE and manifest["modelName"] == "sentiment-bigram"
    for shared in ("sentiment_handler.py", "handler/codec.py", "handler/errors.py", "model/text.py", "tokenizer"):
        a, b = unpacked / shared, model_dir / shared
        if a.is_dir():
            assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
            assert all((a / p.name).read_bytes() == (b / p.name).read_bytes() for p in a.iterdir())
        else:
            assert a.read_bytes() == b.read_bytes(), shared
    mine, theirs = (yaml.safe_load((d / "model-config.yaml").read_text()) for d in (unpacked, model_dir))
    assert mine["handler"] == theirs["handler"]  # the same limits: the same errors
    assert (mine["minWorkers"], mine["maxWorkers"]) == (1, 1)
    assert {k: v for k, v in mine.items() if "Workers" not in k} == {
        k: v for k, v in theirs.items() if "Workers" not in k
    }
