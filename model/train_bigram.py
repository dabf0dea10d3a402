"""Train and trace the phase-2 model: `python -m model.train_bigram [--data-dir DIR] [--out model/artifacts_bigram]`.

NBSVM-style (Wang & Manning 2012, the logistic-regression variant): binarized uni- and bigram features (n-grams
up to BigramConfig.max_n words) of the token ids the sentiment model's tokenizer gives, scaled by their Naive-Bayes
log-count ratios and by 1/sqrt(the review's count of them), fitted by an L2 logistic regression (scikit-learn's
liblinear) on both registers: IMDB's training reviews and SST-2's training phrases, weighted
(BigramConfig.sst2_weight). The ratios are folded into the weights, so the served model only sums the weights of
the distinct n-grams of a review (model/bigram_net.py).

The tokenizer is model/artifacts/tokenizer, the served one: a retrained tokenizer means retraining this model
(config.json records the tokenizer's sha256; `make archive-bigram` refuses a mismatch).

Like the sentiment model, it ships its own evaluation baseline and Platt calibration (baseline.json and
calibration.json, fitted on its validation split's logits), so the continued evaluation judges it against itself:
`python -m model.train_bigram --baseline-only` rewrites them from the committed model without training.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from model import baseline
from model.bigram_net import ARTIFACTS, TORCHSCRIPT_FILE, BigramConfig, BigramNet, file_sha256, ngram_codes
from model.config import ModelConfig
from model.data import IMDB_TRAIN, SST2_DEV, book_split, read_jsonl, read_sst2, training_rows
from model.logit import is_positive
from model.text import UNK, encode_batch, load_tokenizer, token_ids
from model.train import training_cli

logger = logging.getLogger(__name__)
MODEL_DIR = Path(__file__).resolve().parent
TOKENIZER_DIR = MODEL_DIR / "artifacts" / "tokenizer"
TOKENIZER_JSON = "tokenizer.json"
EXAMPLES = [
    "The film is fast moving and has several great action scenes.",
    "The film was very boring. I walked out half-way.",
    "The film is based on a prize-winning novel.<br /><br />" + "A long review that goes on. " * 50,
]


def ngrams(ids: list[int], vocab_size: int, max_n: int) -> np.ndarray:
    """The distinct unigram ids and 2- to max_n-gram codes (ngram_codes, offset by vocab_size) of one review."""
    a = np.asarray(ids, dtype=np.int64)
    return np.unique(np.concatenate([a, *(ngram_codes(a, vocab_size, n) + vocab_size for n in range(2, max_n + 1))]))


def kept_ngrams(reviews: list[np.ndarray], vocab_size: int, min_reviews: int) -> np.ndarray:
    """Sorted codes (without the offset) of the n-grams (n >= 2) found in at least `min_reviews` training reviews."""
    codes, counts = np.unique(np.concatenate(reviews), return_counts=True)
    return codes[(codes >= vocab_size) & (counts >= min_reviews)] - vocab_size


def kept_per_order(codes: np.ndarray, vocab_size: int, max_n: int) -> dict[str, int]:
    """How many of the kept codes are 2-grams, 3-grams, ...: each order's codes start where the shorter ones end."""
    starts = [sum(vocab_size**k for k in range(2, n)) for n in range(2, max_n + 2)]
    bounds = np.searchsorted(codes, starts)
    return {str(n): int(bounds[i + 1] - bounds[i]) for i, n in enumerate(range(2, max_n + 1))}


def features(reviews: list[np.ndarray], codes: np.ndarray, vocab_size: int) -> sp.csr_matrix:
    """Binary [reviews, vocab_size + len(codes)] matrix: unigram ids, then the kept n-grams in code order."""
    rows, cols = [], []
    for row, grams in enumerate(reviews):
        unigrams = grams[grams < vocab_size]
        pairs = grams[grams >= vocab_size] - vocab_size
        at = np.searchsorted(codes, pairs)
        hit = at < len(codes)
        hit[hit] = codes[at[hit]] == pairs[hit]
        cols += [unigrams, at[hit] + vocab_size]
        rows.append(np.full(len(unigrams) + int(hit.sum()), row))
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(reviews), vocab_size + len(codes)))


def nb_ratios(x: sp.csr_matrix, labels: np.ndarray, alpha: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Naive-Bayes log-count ratios r = log((p / |p|_1) / (q / |q|_1)), p and q the (weighted) feature counts of
    each class smoothed by alpha."""
    if weights is not None:
        x = sp.diags(np.asarray(weights, dtype=np.float64)) @ x
    p = alpha + np.asarray(x[labels == 1].sum(axis=0)).ravel()
    q = alpha + np.asarray(x[labels == 0].sum(axis=0)).ravel()
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float64)


def scaled(x: sp.csr_matrix, r: np.ndarray) -> sp.csr_matrix:
    """The model's inputs: each feature times its ratio, each row over sqrt(its count of features), as BigramNet."""
    counts = np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1.0)
    return (sp.diags(1.0 / np.sqrt(counts)) @ x.multiply(r)).tocsr()


def to_net(cfg: BigramConfig, codes: np.ndarray, weights: np.ndarray, bias: float) -> BigramNet:
    net = BigramNet(cfg, len(codes))
    with torch.no_grad():
        net.codes.copy_(torch.from_numpy(codes))
        net.weight.copy_(torch.from_numpy(np.concatenate([weights, [0.0]]).astype(np.float32)))
        net.bias.fill_(bias)
    return net.eval()


def logits(net: torch.nn.Module, ids: list[list[int]], batch_size: int = 256) -> np.ndarray:
    from model.text import pack

    with torch.no_grad():
        return np.concatenate(
            [net(*pack(ids[s : s + batch_size])).numpy() for s in range(0, len(ids), batch_size)] or [np.zeros(0)]
        )


def train(cfg: BigramConfig, data_dir: Path, out: Path, tokenizer_dir: Path = TOKENIZER_DIR) -> dict:
    started = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_dir)
    sha = file_sha256(tokenizer_dir / TOKENIZER_JSON)
    vocab_size = ModelConfig.from_json(tokenizer_dir.parent / "config.json").vocab_size  # the tokenizer's, as trained
    cfg = BigramConfig(**{**cfg.__dict__, "vocab_size": vocab_size, "tokenizer_sha256": sha})
    train_rows, val_rows = training_rows(data_dir, cfg.val_every, cfg.sst2_weight)
    train_ids = token_ids(tokenizer, [r["text"] for r in train_rows])
    val_ids = token_ids(tokenizer, [r["text"] for r in val_rows])
    y_train = np.array([int(r["label"]) for r in train_rows])
    w_train = np.array([r["weight"] for r in train_rows])
    y_val = np.array([int(r["label"]) for r in val_rows])
    tokenized = time.perf_counter()

    train_grams = [ngrams(ids, cfg.vocab_size, cfg.max_n) for ids in train_ids]
    codes = kept_ngrams(train_grams, cfg.vocab_size, cfg.min_reviews)
    x_train = features(train_grams, codes, cfg.vocab_size)
    r = nb_ratios(x_train, y_train, cfg.nb_alpha, w_train)
    clf = LogisticRegression(C=cfg.C, solver="liblinear", max_iter=cfg.max_iter)
    clf.fit(scaled(x_train, r), y_train, sample_weight=w_train)
    fitted = time.perf_counter()
    net = to_net(cfg, codes, clf.coef_.ravel() * r, float(clf.intercept_[0]))

    x_val = features([ngrams(ids, cfg.vocab_size, cfg.max_n) for ids in val_ids], codes, cfg.vocab_size)
    expected = clf.decision_function(scaled(x_val, r))
    val_logits = logits(net, val_ids)
    gap = float(np.abs(val_logits - expected).max())
    if gap > 1e-3:  # the network must be the fitted model, not an approximation of it
        raise RuntimeError(f"the network's logits differ from the fitted model's by {gap:.2e}")
    sst_texts, sst_labels = read_sst2(data_dir / SST2_DEV)
    sst_logits = logits(net, token_ids(tokenizer, sst_texts))

    out.mkdir(parents=True, exist_ok=True)
    cfg.to_json(out / "config.json")
    trace(net, tokenizer, cfg.max_tokens, out / TORCHSCRIPT_FILE)
    metrics = {
        "val_accuracy": round(float((is_positive(val_logits) == y_val).mean()), 4),
        "sst2_dev_accuracy": round(float((is_positive(sst_logits) == np.array(sst_labels)).mean()), 4),
        "train_reviews": sum(1 for r in train_rows if r["register"] == "imdb"),
        "train_sst2_phrases": sum(1 for r in train_rows if r["register"] == "sst2"),
        "val_reviews": len(val_rows),
        "unigrams": cfg.vocab_size,
        "ngrams": kept_per_order(codes, cfg.vocab_size, cfg.max_n),
        "max_logit_gap_to_sklearn": gap,
        "seconds": {
            "tokenize": round(tokenized - started, 1),
            "fit": round(fitted - tokenized, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_baseline(val_logits, val_ids, y_val, tokenizer.backend.token_to_id(UNK), out)
    return metrics


def write_baseline(val_logits: np.ndarray, val_ids: list[list[int]], y_val: np.ndarray, unk_id: int, out: Path) -> dict:
    """baseline.json and calibration.json of the validation split's answers, as the handler counts tokens."""
    tokens = [len(ids) for ids in val_ids]
    unknown = [sum(1 for i in ids if i == unk_id) for ids in val_ids]
    return baseline.save(out, [float(x) for x in val_logits], tokens, unknown, [int(y) for y in y_val])


def rewrite_baseline(data_dir: Path, out: Path, tokenizer_dir: Path = TOKENIZER_DIR) -> dict:
    """The baseline and calibration of the committed model in `out`, without training it again."""
    cfg = BigramConfig.from_json(out / "config.json")
    tokenizer = load_tokenizer(tokenizer_dir)
    _, val_rows = book_split(read_jsonl(data_dir / IMDB_TRAIN), cfg.val_every)
    val_ids = token_ids(tokenizer, [r["text"] for r in val_rows])
    val_logits = logits(load_eager(out), val_ids)
    return write_baseline(
        val_logits, val_ids, np.array([int(r["label"]) for r in val_rows]), tokenizer.backend.token_to_id(UNK), out
    )


def trace(net: BigramNet, tokenizer, max_tokens: int, path: Path) -> Path:
    """TorchScript by tracing, checked on other batch sizes and lengths, an empty review among them."""
    example = encode_batch(tokenizer, EXAMPLES)
    empty = (torch.zeros(0, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    checks = [encode_batch(tokenizer, EXAMPLES[:1]), encode_batch(tokenizer, EXAMPLES * 7)]
    with torch.no_grad():
        traced = torch.jit.trace(net, example, check_inputs=[*checks, empty])
    traced.save(str(path))
    logger.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def load_eager(artifacts: Path = ARTIFACTS) -> BigramNet:
    """The eager network with the traced model's own weights: the archive's .pt is their one copy."""
    state = torch.jit.load(str(artifacts / TORCHSCRIPT_FILE), map_location="cpu").state_dict()
    net = BigramNet(BigramConfig.from_json(artifacts / "config.json"), state["codes"].shape[0])
    net.load_state_dict(state)
    return net.eval()


def main() -> None:
    import sys

    only_baseline = "--baseline-only" in sys.argv  # the committed model's baseline, without training it again
    if only_baseline:
        sys.argv.remove("--baseline-only")
    args = training_cli(__doc__, ARTIFACTS)
    if only_baseline:
        rewrite_baseline(args.data_dir, args.out)
        return
    metrics = train(BigramConfig(), args.data_dir, args.out)
    logger.info(
        "done in %.0f s: val_accuracy %.4f, SST-2 dev %.4f, kept n-grams %s",
        metrics["seconds"]["total"],
        metrics["val_accuracy"],
        metrics["sst2_dev_accuracy"],
        metrics["ngrams"],
    )


if __name__ == "__main__":
    main()
