"""Serving cost per review of two model versions side by side, in one run: `python -m bench.model_cost [--ref main]`.

The versions are the committed artifacts of a git revision (`--ref`, default main) and those of the working tree.
For each: the served sentiment TorchScript and the phase-2 sentiment-bigram TorchScript (tokenization included, one
review per call, as a lone request meets them) and the device's int8 ONNX model (tokenizer.json through the
`tokenizers` library, one review per call, one core), on IMDB reviews (unsup split) and on their first sentences
(the short register). Medians of wall time per review, in microseconds. Like every benchmark, its figures mean
something only on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import tarfile
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from bench.reviews import first_sentences, load_reviews
from edge.device import DeviceModel
from handler import settings as handler_settings
from model.bigram_net import TORCHSCRIPT_FILE as BIGRAM_FILE
from model.export import load_eager
from model.infer import load_scorer, score
from model.onnx_export import DeviceNet, export
from model.text import pack, token_ids

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
ARTIFACT_DIRS = ("model/artifacts", "model/artifacts_bigram")


def checkout(ref: str, into: Path) -> Path:
    """The committed artifacts of `ref`, extracted under `into` (git archive: the work tree is untouched)."""
    archive = subprocess.run(["git", "archive", ref, *ARTIFACT_DIRS], cwd=ROOT, check=True, capture_output=True)
    tar_path = into / "artifacts.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into


def per_review(fn, texts: list[str]) -> float:
    """Median wall time of fn([text]) over the texts, in microseconds (after one warm-up call)."""
    fn(texts[:1])
    times = []
    for text in texts:
        started = time.perf_counter()
        fn([text])
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e6, 1)


def device_scorer(root: Path, tmp: Path):
    """The device's phase 1 as edge.device runs it: a bundle of the int8 ONNX model and tokenizer.json."""
    artifacts = root / "model" / "artifacts"
    bundle = tmp / "bundle"
    bundle.mkdir()
    export(DeviceNet(load_eager(artifacts), quantize=True), bundle / "model.onnx")
    (bundle / "tokenizer.json").write_bytes((artifacts / "tokenizer" / "tokenizer.json").read_bytes())
    served = load_scorer(artifacts)
    settings = {  # a calibration and threshold do not change the cost of a score: neutral ones
        "model_version": "cost",
        "max_tokens": served.max_tokens,
        "unk_id": served.unk_id,
        "slope": 1.0,
        "intercept": 0.0,
        "threshold": 0.5,
        "audit_rate": 0.0,
        "phase2_model": "sentiment-bigram",
        "phase2_timeout_s": 5.0,
        "limits": asdict(handler_settings.read().limits),
    }
    (bundle / "settings.json").write_text(json.dumps(settings))
    device = DeviceModel(bundle, threads=1)
    return device.score


def costs(root: Path, tmp: Path, texts: dict[str, list[str]]) -> dict:
    served = load_scorer(root / "model" / "artifacts")
    bigram = torch.jit.load(str(root / "model" / "artifacts_bigram" / BIGRAM_FILE), map_location="cpu").eval()

    def phase2(batch: list[str]) -> None:
        with torch.inference_mode():
            bigram(*pack(token_ids(served.tokenizer, batch)))

    device = device_scorer(root, tmp)
    return {
        register: {
            "sentiment_torchscript_us": per_review(lambda b: score(served, b), sample),
            "sentiment_bigram_torchscript_us": per_review(phase2, sample),
            "device_int8_onnx_us": per_review(device, sample),
        }
        for register, sample in texts.items()
    }


def run(ref: str, n: int) -> dict:
    torch.set_num_threads(1)  # a serving worker's share of the machine
    reviews = load_reviews(n)
    texts = {"imdb_reviews": reviews, "first_sentences": first_sentences(reviews)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "ref").mkdir()
        (tmp / "tree").mkdir()
        return {
            "reviews": n,
            ref: costs(checkout(ref, tmp / "ref"), tmp / "ref", texts),
            "working tree": costs(ROOT, tmp / "tree", texts),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="main", help="the git revision whose artifacts are compared")
    parser.add_argument("--reviews", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(json.dumps(run(args.ref, args.reviews), indent=2))


if __name__ == "__main__":
    main()
