"""The stateless serving function: texts in, logits out. TorchServe, the batch job and the benchmarks call it."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from model.text import UNK, TextTokenizer, encode_batch, load_tokenizer

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
    unk_id: int  # the id of [UNK]: a token outside the vocabulary


@dataclass(frozen=True)
class Score:
    """One review's answer from the model: its logit, and how much of the review the vocabulary covered."""

    logit: float  # positive_review_logits
    tokens: int  # after truncation to max_tokens
    unknown_tokens: int  # tokens outside the vocabulary, all embedded as [UNK]

    @property
    def unknown_fraction(self) -> float:
        return self.unknown_tokens / self.tokens if self.tokens else 1.0


def load_scorer(directory: Path) -> Scorer:
    """Load TorchScript model, tokenizer and version from an artifact directory or an unpacked .mar.

    Any archive the handler serves: the TorchScript file is the one its MANIFEST.json names (sentiment.pt, or
    bigram.pt for sentiment-bigram), and of config.json only `max_tokens` is read, which every model's has."""
    directory = Path(directory)
    manifest = json.loads((directory / MANIFEST).read_text())["model"] if (directory / MANIFEST).exists() else {}
    model_file = manifest.get("serializedFile", TORCHSCRIPT_FILE)
    missing = [n for n in (model_file, CONFIG_FILE, TOKENIZER_DIR) if not (directory / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"{directory} lacks {', '.join(missing)}: rebuild with `make export archive` (or `make train` first)"
        )
    max_tokens = int(json.loads((directory / CONFIG_FILE).read_text())["max_tokens"])
    model = torch.jit.load(str(directory / model_file), map_location="cpu").eval()
    version = manifest.get("modelVersion", "dev")
    tokenizer = load_tokenizer(directory / TOKENIZER_DIR)
    if tokenizer.max_tokens != max_tokens:
        raise ValueError(f"{directory}: tokenizer.json truncates at {tokenizer.max_tokens}, config at {max_tokens}")
    return Scorer(model, tokenizer, max_tokens, version, tokenizer.backend.token_to_id(UNK))


def tokenize(scorer: Scorer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The model input for a batch of texts: one tokenizer call (the first half of `score`)."""
    return encode_batch(scorer.tokenizer, texts)


def forward(scorer: Scorer, batch: tuple[torch.Tensor, torch.Tensor]) -> list[float]:
    """positive_review_logits for a tokenized batch: one forward pass (the second half of `score`)."""
    with torch.inference_mode():
        return scorer.model(*batch).tolist()


def scores(scorer: Scorer, batch: tuple[torch.Tensor, torch.Tensor], logits: list[float]) -> list[Score]:
    """Each review's Score: its logit, and its token and unknown-token counts from the flat ids and offsets."""
    ids, offsets = batch
    lengths = torch.diff(offsets, append=torch.tensor([ids.numel()]))
    review = torch.repeat_interleave(torch.arange(len(offsets)), lengths)
    unknown = torch.zeros(len(offsets), dtype=torch.long).index_add_(0, review, (ids == scorer.unk_id).long())
    return [Score(*s) for s in zip(logits, lengths.tolist(), unknown.tolist(), strict=True)]


def score(scorer: Scorer, texts: list[str], timings: dict[str, float] | None = None) -> list[Score]:
    """A Score for each text, one tokenizer call and one forward pass for the whole batch.

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
    return scores(scorer, batch, logits)


def limit_threads(torch_threads: int) -> None:
    """One process, `torch_threads` cores: a TorchServe worker or a Spark task shares the machine with its peers,
    so neither torch's intra-op pool nor the tokenizer's own thread pool may spread over every core."""
    torch.set_num_threads(torch_threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
