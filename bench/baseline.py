"""Tokenization as the product did it before it read tokenizer.json with the `tokenizers` library directly.

transformers' `PreTrainedTokenizerFast.__call__` over the archive's tokenizer files, then `torch.tensor` on a
list of the ids: kept only so that `make bench` measures the ceiling of that path and of today's side by side,
in one run on the same reviews. Never imported by the product.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def load(directory: Path):
    """The tokenizer directory as the product loaded it: by its saved class, local files only."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)


def encode_batch(tokenizer, texts: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> (flat ids, offsets), by one transformers call for the whole batch."""
    batch_ids = tokenizer(
        list(texts), add_special_tokens=False, truncation=True, max_length=max_tokens, return_attention_mask=False
    )["input_ids"]
    lengths = torch.tensor([len(ids) for ids in batch_ids], dtype=torch.long)
    offsets = torch.zeros(len(batch_ids), dtype=torch.long)
    if len(batch_ids) > 1:
        offsets[1:] = torch.cumsum(lengths[:-1], dim=0)
    flat = torch.tensor([i for ids in batch_ids for i in ids], dtype=torch.long)
    return flat, offsets
