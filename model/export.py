"""Trace the trained classifier to TorchScript: `python -m model.export [--artifacts model/artifacts]`.

Why trace rather than script: the forward pass is straight-line tensor code with no data-dependent Python
branches (the token count is a sum of ones added per review, not `len()`), so tracing records the whole graph;
the trace is checked on batches of other sizes and lengths here, and tests/unit/test_export.py proves eager ==
TorchScript.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from model.config import ARTIFACTS, ModelConfig
from model.infer import CONFIG_FILE, TOKENIZER_DIR, TORCHSCRIPT_FILE
from model.net import SentimentNet
from model.text import encode_batch, load_tokenizer

logger = logging.getLogger(__name__)
EXAMPLES = [
    "The film is fast moving and has several great action scenes.",
    "The film was very boring. I walked out half-way.",
    "The film is based on a prize-winning novel.<br /><br />" + "A long review that goes on. " * 50,
]


def load_eager(artifacts: Path) -> SentimentNet:
    net = SentimentNet(ModelConfig.from_json(artifacts / CONFIG_FILE))
    net.load_state_dict(torch.load(artifacts / "weights.pt", map_location="cpu"))
    return net.eval()


def export(artifacts: Path) -> Path:
    net = load_eager(artifacts)
    tokenizer = load_tokenizer(artifacts / TOKENIZER_DIR)
    example = encode_batch(tokenizer, EXAMPLES)
    checks = [encode_batch(tokenizer, EXAMPLES[:1]), encode_batch(tokenizer, EXAMPLES * 7)]
    with torch.no_grad():
        traced = torch.jit.trace(net, example, check_inputs=checks)
    path = artifacts / TORCHSCRIPT_FILE
    traced.save(str(path))
    logger.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    export(args.artifacts)


if __name__ == "__main__":
    main()
