"""The phase-2 classifier: NBSVM-style logistic regression over word uni- and bigrams, as a traceable network.

It reads the same ragged batch as SentimentNet (flat token ids + offsets from the one tokenizer), computes the
bigrams inside the model from adjacent ids of the same review, and scores each distinct uni- or bigram once
(binarized features, as in Wang & Manning 2012): logit = bias + (sum of the weights of the distinct known n-grams
present) / sqrt(how many there are). The Naive-Bayes log-count ratios are folded into those weights at training time
(model/train_bigram.py). The sqrt-n scaling is what lets one linear model read both registers: without it a
review's logit grows with its length, and the weights that suit 230-token reviews are too small for a six-word
sentence (with SST-2 in training, validation accuracy: IMDB 0.9114 -> 0.9190, SST-2 dev 0.7924 -> 0.8337).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ARTIFACTS = Path(__file__).resolve().parent / "artifacts_bigram"  # beside model/artifacts, never inside it
TORCHSCRIPT_FILE = "bigram.pt"  # the archive's serialized file; the eager model is rebuilt from its weights


@dataclass(frozen=True)
class BigramConfig:
    vocab_size: int = 30_000  # the tokenizer's: unigram ids are its ids (set from the tokenizer at training time)
    max_tokens: int = 1024  # the same truncation as the sentiment model: one tokenizer call, one setting
    min_reviews: int = 2  # a bigram kept in the model appears in at least this many training reviews: rarer ones
    # cannot be estimated and would only grow the archive
    nb_alpha: float = 1.0  # Laplace smoothing of the Naive-Bayes log-count ratios (Wang & Manning's alpha)
    C: float = 30.0  # inverse L2 strength of the logistic regression, chosen on both validation splits (the
    # sqrt-n scaled features are ~sqrt(n) times smaller than binary ones, hence a C far above liblinear's 1)
    sst2_weight: float = 0.25  # each SST-2 training phrase counts a quarter of an IMDB review: 67,349 phrases
    # at 0.25 weigh 0.9 times IMDB's 18,750 reviews; at 0.5 IMDB validation loses 0.5 points and SST-2 dev gains none
    max_iter: int = 1000  # liblinear converges long before this on 18,750 reviews
    val_every: int = 4  # the book's split, as the sentiment model: 3 of every 4 reviews train, 1 of 4 validates
    tokenizer_sha256: str = ""  # the tokenizer.json the ids came from: a retrained tokenizer invalidates the model

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: Path) -> BigramConfig:
        return cls(**json.loads(Path(path).read_text()))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def bigram_codes(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """The code of each adjacent pair (a, b): a * vocab_size + b; training and the model use this one rule."""
    return ids[:-1] * vocab_size + ids[1:]


class BigramNet(nn.Module):
    """Input: flat token ids and the offset where each review starts (the served model's format).

    Every step is a tensor op (no Python branch on the data, no len()), so a trace holds for any batch size and
    review length, empty reviews included (tests/unit/test_bigram.py)."""

    def __init__(self, cfg: BigramConfig, n_bigrams: int) -> None:
        super().__init__()
        self.vocab_size = cfg.vocab_size
        self.last_code = max(n_bigrams - 1, 0)  # a Python int: the trace keeps it as the constant it is
        self.register_buffer("codes", torch.zeros(n_bigrams, dtype=torch.long))  # the kept bigrams' codes, sorted
        # one weight per unigram, per kept bigram, and a last one (always 0) for a bigram the model does not know
        self.weight = nn.Parameter(torch.zeros(cfg.vocab_size + n_bigrams + 1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        n_features = self.weight.shape[0]
        unknown = n_features - 1
        # each token's review: a 1 where a review starts (empty reviews share an offset, hence the add), summed up
        starts = F.pad(torch.zeros_like(ids), (0, 1)).index_add(0, offsets, torch.ones_like(offsets))
        review = torch.cumsum(starts, 0)[:-1] - 1
        codes = bigram_codes(ids, self.vocab_size)
        found = torch.searchsorted(self.codes, codes).clamp(max=self.last_code)
        known = (self.codes[found] == codes) & (review[:-1] == review[1:])  # never across two reviews
        bigram = torch.where(known, found + self.vocab_size, torch.full_like(found, unknown))
        features = torch.cat([ids, bigram])
        owners = torch.cat([review, review[:-1]])
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
