"""The book's classifier in PyTorch: bag-of-words embedding (sqrt-n) -> Dense 16 ReLU -> Dense 1 logit."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig


class SentimentNet(nn.Module):
    """Input is a ragged batch: flat token ids plus the offset where each review starts.

    Every operation is a tensor op with no Python branch on the data, so a trace is valid for any batch
    size and any review length (proven by tests/unit/test_export.py).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(cfg.vocab_size, cfg.embed_dim, mode="sum")
        self.dropout = nn.Dropout(cfg.dropout)
        self.hidden = nn.Linear(cfg.embed_dim, cfg.hidden_dim)
        self.out = nn.Linear(cfg.hidden_dim, 1)
        self.register_buffer("one", torch.ones(1, 1), persistent=False)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        summed = self.embedding(ids, offsets)
        # Token count per review, as a bag-sum of ones: stays symbolic under tracing.
        counts = F.embedding_bag(torch.zeros_like(ids), self.one, offsets, mode="sum")
        pooled = summed / counts.clamp(min=1.0).sqrt()  # sqrt-n combiner, as TF-Hub's swivel layer
        hidden = F.relu(self.hidden(self.dropout(pooled)))
        return self.out(hidden).squeeze(-1)  # positive_review_logits, one per review
