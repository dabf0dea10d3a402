"""The device model: the trained classifier with an int8 embedding table, exported to ONNX from the eager model.

The served model takes a ragged batch (flat ids + offsets, an EmbeddingBag); the device model takes a padded one
(ids [batch, tokens] and each review's length), because a padded gather-and-sum is made of ONNX operators every
runtime has (onnxruntime on Android, iOS and in the browser), where EmbeddingBag is not. Both compute the same
sqrt-n pooled embedding: tests/unit/test_edge_parity.py proves it (fp32: equal; int8: within the quantization
bound that `logit_error_bound` computes).

The export goes through torch.export (`dynamo=True`), not the TorchScript-based exporter: TorchScript is
deprecated upstream, and the ONNX file must keep building after it is gone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.net import SentimentNet, window_features

logger = logging.getLogger(__name__)
OPSET = 20  # what torch.export's ONNX translator emits; onnxruntime (and onnxruntime-web) run it
INPUTS = ("ids", "lengths")
OUTPUT = "logits"  # raw positive_review_logits, before calibration.json's slope and intercept


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric row-wise int8: each embedding row gets its own scale (max |w| / 127), so rare words with small
    embeddings keep their resolution instead of sharing the scale of the largest row."""
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale.to(torch.float32)


class DeviceNet(nn.Module):
    """SentimentNet over a padded batch, its embedding table fp32 or int8 (row-wise scales)."""

    def __init__(self, net: SentimentNet, quantize: bool) -> None:
        super().__init__()
        weight = net.embedding.weight.detach().clone()
        if quantize:
            q, scale = quantize_rows(weight)
        else:
            q, scale = weight, torch.ones(weight.shape[0])
        self.register_buffer("table", q)
        self.register_buffer("scale", scale)
        self.window = net.window
        self.hidden = net.hidden
        self.out = net.out

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).to(torch.float32)[..., None]
        rows = self.table[ids].to(torch.float32) * self.scale[ids][..., None] * mask
        features = [rows]
        if self.window is not None:  # one review a row: zeros before its first word, padding masked after
            features.append(window_features(self.window, rows) * mask)
        summed = torch.cat(features, dim=2).sum(dim=1)
        pooled = summed / lengths.to(torch.float32).clamp(min=1.0).sqrt()[:, None]  # sqrt-n, as SentimentNet
        return self.out(F.relu(self.hidden(pooled))).squeeze(-1)


def pad(batch_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token-id lists -> (ids [batch, longest] padded with 0, lengths [batch]); the padding is masked out."""
    lengths = np.array([len(ids) for ids in batch_ids], dtype=np.int64)
    ids = np.zeros((len(batch_ids), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
    for row, review in enumerate(batch_ids):
        ids[row, : len(review)] = review
    return ids, lengths


def logit_error_bound(net: SentimentNet, scale: torch.Tensor, batch_ids: list[list[int]]) -> torch.Tensor:
    """Per review, the most an int8 table (rounding error <= scale / 2 per element) can move the logit.

    Pooled embedding error per dimension <= E = sum(scale[id] / 2) / sqrt(n). A window unit reads each word in at
    most one place of each window, so its pooled error is <= E times the L1 norm of its weights (ReLU is
    1-Lipschitz). Through hidden (|W|), ReLU and out (|w|), the logit moves at most E times that gain."""
    per_feature = torch.ones(net.embedding.weight.shape[1])
    if net.window is not None:
        per_feature = torch.cat([per_feature, net.window.weight.abs().sum(dim=1)])
    gain = net.out.weight.abs() @ net.hidden.weight.abs() @ per_feature
    bounds = [scale[ids].sum() / 2 / max(len(ids), 1) ** 0.5 if ids else torch.tensor(0.0) for ids in batch_ids]
    return torch.stack(bounds) * gain


def export(device_net: DeviceNet, path: Path) -> Path:
    """Write `device_net` as ONNX with a dynamic batch and review length; returns the path."""
    example = (torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]]), torch.tensor([3, 2]))
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
    program = torch.onnx.export(
        device_net.eval(),
        example,
        dynamo=True,
        input_names=list(INPUTS),
        output_names=[OUTPUT],
        dynamic_shapes={"ids": {0: batch, 1: tokens}, "lengths": {0: batch}},
        opset_version=OPSET,
        optimize=True,
        verbose=False,
    )
    program.save(str(path))
    logger.info("wrote %s (%.0f kB)", path, path.stat().st_size / 1e3)
    return path
