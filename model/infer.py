"""The stateless serving function: texts in, logits out. TorchServe, the batch job and the benchmarks call it."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from model.config import ModelConfig
from model.text import TextTokenizer, encode_batch, load_tokenizer

TORCHSCRIPT_FILE = "sentiment.pt"
CONFIG_FILE = "config.json"
TOKENIZER_DIR = "tokenizer"
MANIFEST = Path("MAR-INF") / "MANIFEST.json"  # written by torch-model-archiver


@dataclass(frozen=True)
class Scorer:
    model: torch.jit.ScriptModule
    tokenizer: TextTokenizer
    max_tokens: int
    version: str


def load_scorer(directory: Path) -> Scorer:
    """Load TorchScript model, tokenizer and version from an artifact directory or an unpacked .mar."""
    directory = Path(directory)
    missing = [n for n in (TORCHSCRIPT_FILE, CONFIG_FILE, TOKENIZER_DIR) if not (directory / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"{directory} lacks {', '.join(missing)}: rebuild with `make export archive` (or `make train` first)"
        )
    cfg = ModelConfig.from_json(directory / CONFIG_FILE)
    model = torch.jit.load(str(directory / TORCHSCRIPT_FILE), map_location="cpu").eval()
    version = "dev"
    if (directory / MANIFEST).exists():
        version = json.loads((directory / MANIFEST).read_text())["model"]["modelVersion"]
    tokenizer = load_tokenizer(directory / TOKENIZER_DIR)
    if tokenizer.max_tokens != cfg.max_tokens:
        raise ValueError(f"{directory}: tokenizer.json truncates at {tokenizer.max_tokens}, config at {cfg.max_tokens}")
    return Scorer(model, tokenizer, cfg.max_tokens, version)


def tokenize(scorer: Scorer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The model input for a batch of texts: one tokenizer call (the first half of `score`)."""
    return encode_batch(scorer.tokenizer, texts)


def forward(scorer: Scorer, batch: tuple[torch.Tensor, torch.Tensor]) -> list[float]:
    """positive_review_logits for a tokenized batch: one forward pass (the second half of `score`)."""
    with torch.inference_mode():
        return scorer.model(*batch).tolist()


def score(scorer: Scorer, texts: list[str], timings: dict[str, float] | None = None) -> list[float]:
    """positive_review_logits for each text, one forward pass for the whole batch.

    With `timings`, the seconds spent tokenizing and in the forward pass are stored there (the handler reports
    them as TokenizeTime and ForwardTime on the metrics port)."""
    if not texts:
        return []
    started = time.perf_counter()
    batch = tokenize(scorer, texts)
    tokenized = time.perf_counter()
    logits = forward(scorer, batch)
    if timings is not None:
        timings.update(TokenizeTime=tokenized - started, ForwardTime=time.perf_counter() - tokenized)
    return logits


def sigmoid(logit: float) -> float:
    """Numerically stable logistic function."""
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    z = math.exp(logit)
    return z / (1.0 + z)
