"""The phase-2 classifier: NBSVM-style logistic regression over word uni- and bigrams, as a traceable network.

It reads the same ragged batch as SentimentNet (flat token ids + offsets from the one tokenizer), computes the
bigrams (and trigrams or 4-grams if BigramConfig.max_n says so) inside the model from adjacent ids of the same
review, and scores each distinct n-gram once (binarized features, as in Wang & Manning 2012): logit = bias + (sum
of the weights of the distinct known n-grams present) / sqrt(how many there are). The Naive-Bayes log-count ratios
are folded into those weights at training time (model/train_bigram.py). The sqrt-n scaling is what lets one linear
model read both registers: without it a review's logit grows with its length, and the weights that suit 230-token
reviews are too small for a six-word sentence (uni+bigrams with SST-2 in training, validation accuracy: IMDB
0.9114 -> 0.9190, SST-2 dev 0.7924 -> 0.8337).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from model.net import review_index

ARTIFACTS = Path(__file__).resolve().parent / "artifacts_bigram"  # beside model/artifacts, never inside it
TORCHSCRIPT_FILE = "bigram.pt"  # the archive's serialized file; the eager model is rebuilt from its weights


@dataclass(frozen=True)
class BigramConfig:
    vocab_size: int = 30_000  # the tokenizer's: unigram ids are its ids (set from the tokenizer at training time)
    max_tokens: int = 1024  # the same truncation as the sentiment model: one tokenizer call, one setting
    max_n: int = 2  # the longest n-gram read (up to 4 at 30,000 words: ngram_codes). Trigrams were measured and
    # not taken (docs/model.md): IMDB validation 0.9190 -> 0.9192 for 2.4 times the features, 2.6 times the archive
    min_reviews: int = 2  # an n-gram (n >= 2) kept in the model appears in at least this many training reviews:
    # rarer ones cannot be estimated and would only grow the archive
    nb_alpha: float = 1.0  # Laplace smoothing of the Naive-Bayes log-count ratios (Wang & Manning's alpha)
    C: float = 30.0  # inverse L2 strength of the logistic regression, chosen on both validation splits, and the
    # best of 10 / 30 / 100 / 300 by 5-fold cross-validation on the training rows too, with or without trigrams
    # (the sqrt-n scaled features are ~sqrt(n) times smaller than binary ones, hence a C far above liblinear's 1)
    sst2_weight: float = 0.25  # each SST-2 training phrase counts a quarter of an IMDB review: 67,349 phrases
    # at 0.25 weigh 0.9 times IMDB's 18,750 reviews; at 0.5 IMDB validation loses 0.5 points and SST-2 dev gains none
    max_iter: int = 1000  # liblinear converges long before this on 18,750 reviews
    val_every: int = 4  # the book's split, as the sentiment model: 3 of every 4 reviews train, 1 of 4 validates
    tokenizer_sha256: str = ""  # the tokenizer.json the ids came from: a retrained tokenizer invalidates the model

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: Path) -> BigramConfig:
        return cls(**{"max_n": 2, **json.loads(Path(path).read_text())})  # configs before max_n: uni+bigrams


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ngram_codes(ids, vocab_size: int, n: int):
    """The code of each run of n adjacent ids, training's (numpy) and the model's (torch) one rule: the ids as the
    digits of a base-`vocab_size` number (a * V + b for a pair, a * V * V + b * V + c for a triple), plus the count
    of all shorter codes (V^2 for triples), so that no triple's code is a pair's and all orders share one sorted
    table. For n = 2 the codes are those of the uni+bigram model. A window that spans two reviews gets a code too:
    the caller drops it. Slices, not lengths: the trace holds for any length, shorter than n included."""
    offset = sum(vocab_size**k for k in range(2, n))
    if n < 2 or offset + vocab_size**n > 2**63:  # 30,000 words: up to 4-grams fit int64
        raise ValueError(f"{n}-gram codes of {vocab_size} words do not fit int64")
    code = ids[: -(n - 1)]
    for j in range(1, n):
        code = code * vocab_size + (ids[j : j - (n - 1)] if j < n - 1 else ids[j:])
    return code + offset if offset else code


class BigramNet(nn.Module):
    """Input: flat token ids and the offset where each review starts (the served model's format).

    Every step is a tensor op (no Python branch on the data, no len()), so a trace holds for any batch size and
    review length, empty reviews included (tests/unit/test_bigram.py)."""

    def __init__(self, cfg: BigramConfig, n_ngrams: int) -> None:
        super().__init__()
        self.vocab_size = cfg.vocab_size
        self.max_n = cfg.max_n  # a Python int: the trace unrolls one step per order
        self.last_code = max(n_ngrams - 1, 0)  # a Python int: the trace keeps it as the constant it is
        # the kept n-grams' codes (ngram_codes), sorted: shorter orders first, since their codes are smaller
        self.register_buffer("codes", torch.zeros(n_ngrams, dtype=torch.long))
        # one weight per unigram, per kept n-gram, and a last one (always 0) for an n-gram the model does not know
        self.weight = nn.Parameter(torch.zeros(cfg.vocab_size + n_ngrams + 1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        n_features = self.weight.shape[0]
        unknown = n_features - 1
        review = review_index(ids, offsets)
        orders = range(2, self.max_n + 1)
        codes = torch.cat([ngram_codes(ids, self.vocab_size, n) for n in orders])
        # a window whose first and last words are in one review: never across two reviews
        inside = torch.cat([review[: -(n - 1)] == review[n - 1 :] for n in orders])
        found = torch.searchsorted(self.codes, codes).clamp(max=self.last_code)
        known = (self.codes[found] == codes) & inside
        ngram = torch.where(known, found + self.vocab_size, torch.full_like(found, unknown))
        features = torch.cat([ids, ngram])
        owners = torch.cat([review, *(review[: -(n - 1)] for n in orders)])
        # distinct (review, feature) pairs: sort their combined key and keep the first of each run
        key, _ = torch.sort(owners * n_features + features)
        first = torch.cat([torch.ones_like(key[:1], dtype=torch.bool), key[1:] != key[:-1]])
        feature = key % n_features
        counted = (first & (feature != unknown)).to(self.weight.dtype)  # the distinct known n-grams
        contribution = self.weight[feature] * counted
        owner = key // n_features
        summed = torch.zeros_like(offsets, dtype=self.weight.dtype).index_add(0, owner, contribution)
        counts = torch.zeros_like(offsets, dtype=self.weight.dtype).index_add(0, owner, counted)
        return summed / counts.clamp(min=1.0).sqrt() + self.bias  # positive_review_logits, one per review
