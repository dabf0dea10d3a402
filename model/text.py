"""The one tokenization code path: training, the TorchServe handler and the batch job all call these."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

# transformers is only the tokenizer's loader here. Told that torch is off limits, it skips importing torch's
# compiler and distributed stacks for models this project never builds with it (the tokenizer then loads in
# about 1.0 s instead of 2.2 s in every process that starts: TorchServe workers, Spark's Python workers); and
# the archive's tokenizer is loaded by its own class, not through AutoTokenizer, whose registry of every model
# family costs another 0.2 s of imports.
os.environ.setdefault("USE_TORCH", "0")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # ...without its "no PyTorch found" notice
from transformers import PreTrainedTokenizerFast  # noqa: E402

PAD, UNK = "[PAD]", "[UNK]"


def build_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int, max_tokens: int):
    """Train a word-level fast tokenizer; IMDB's `<br />` markup and control characters are normalised away."""
    tok = Tokenizer(WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(r"<br\s*/?>"), " "),
            normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK])
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token=UNK, pad_token=PAD, model_max_length=max_tokens, truncation_side="right"
    )


def load_tokenizer(directory: Path):
    """Load the tokenizer saved with `save_pretrained`; local files only, never a hub."""
    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)


def token_ids(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Tokenize a whole batch in one call; reviews longer than `max_tokens` are truncated, not refused."""
    return tokenizer(
        list(texts), add_special_tokens=False, truncation=True, max_length=max_tokens, return_attention_mask=False
    )["input_ids"]


def pack(batch_ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> the model's ragged input: (flat ids, offset where each review starts)."""
    lengths = torch.tensor([len(ids) for ids in batch_ids], dtype=torch.long)
    offsets = torch.zeros(len(batch_ids), dtype=torch.long)
    if len(batch_ids) > 1:
        offsets[1:] = torch.cumsum(lengths[:-1], dim=0)
    flat = torch.tensor([i for ids in batch_ids for i in ids], dtype=torch.long)
    return flat, offsets


def encode_batch(tokenizer, texts: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> model input, in one tokenizer call for the whole batch."""
    return pack(token_ids(tokenizer, texts, max_tokens))
