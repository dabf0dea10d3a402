"""Build the device bundle: `python -m serving.build.bundle [--out dist/edge]` (`make edge`), and calibrate it:
`python -m serving.build.bundle --calibrate` (`make calibrate`, after training either model; needs the data).

The device's probability is the served model's: the one calibration, calibration.json (model/platt.py's
(slope, intercept), fitted on the validation split by `make train` and shipped in the archive for the
evaluation), applied to the int8 logit. Calibrating, from the committed artifacts of both models and the
validation split, writes the committed model/artifacts/device.json: the threshold read off the validation split's
cascade curve against the phase-2 model (model/threshold.py), how it and the calibration fare on the int8 model,
and the digests of the files they were fitted to. Building needs no data, like serving:
  1. the eager sentiment model, its embedding table int8 (row-wise scales), exported to ONNX (model/onnx_export.py);
  2. the served tokenizer.json, copied unchanged;
  3. settings.json: calibration.json's slope and intercept, device.json's threshold and the handler's limits,
     refused if the models or the calibration changed since.
Plain files only (model.onnx, tokenizer.json, settings.json), so a browser page can fetch them as they are.

It lives beside serving/build/archive.py because it is the device's archive: like a .mar it packs the model with the
handler's facts (the request limits the device enforces), and only serving/ may import both model and handler.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from handler import settings as handler_settings
from model import calibration, threshold
from model.bigram_net import ARTIFACTS as BIGRAM_ARTIFACTS
from model.bigram_net import TORCHSCRIPT_FILE as BIGRAM_FILE
from model.config import ARTIFACTS
from model.data import DATA_DIR, IMDB_TRAIN, SST2_DEV, book_split, read_jsonl, read_sst2
from model.ece import expected_calibration_error
from model.export import load_eager
from model.infer import TOKENIZER_DIR, load_scorer
from model.logit import is_positive
from model.onnx_export import DeviceNet, export, pad
from model.platt import CALIBRATION_FILE, Calibration
from model.text import pack, token_ids

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist" / "edge"
CALIBRATION = ARTIFACTS / "device.json"
MODEL_FILE, TOKENIZER_FILE, SETTINGS_FILE = "model.onnx", "tokenizer.json", "settings.json"  # edge.device's names


@dataclass(frozen=True)
class BundleConfig:
    model_version: str = "1.0-int8"  # the sentiment archive's version, and how its table is stored
    tolerance: float = 0.003  # the shipped threshold defers the least while staying within 0.3 accuracy points
    # of phase 2 alone on the validation split
    audit_rate: float = 0.02  # 1 in 50 confident answers is also scored by phase 2: about 100 a day per 5,000
    # reviews, enough to see the device model drift within weeks, 2 % more server work
    phase2_model: str = "sentiment-bigram"  # the TorchServe model deferred reviews go to
    phase2_timeout_s: float = 5.0  # a deferred answer waits at most this long for the server, then the device's
    # stands as provisional: well above phase 2's seconds-long worst case, short enough for a person waiting
    val_every: int = 4  # the book's split, as both models were trained with: calibration sees validation only


@dataclass(frozen=True)
class Split:
    """Reviews and labels of one evaluation set."""

    name: str
    texts: list[str]
    labels: np.ndarray
    ids: list[str]  # IMDB's review ids; SST-2 dev has none: its row numbers


def evaluation_splits(data_dir: Path = DATA_DIR, val_every: int = 4) -> tuple[Split, Split]:
    """IMDB's validation split (every `val_every`-th review, as both models were trained) and SST-2 dev."""
    _, val_rows = book_split(read_jsonl(data_dir / IMDB_TRAIN), val_every)
    sst_texts, sst_labels = read_sst2(data_dir / SST2_DEV)
    return (
        Split(
            "imdb_validation",
            [r["text"] for r in val_rows],
            np.array([int(r["label"]) for r in val_rows]),
            [str(r["id"]) for r in val_rows],
        ),
        Split("sst2_dev", sst_texts, np.array(sst_labels), [f"sst2-dev-{i}" for i in range(len(sst_texts))]),
    )


def onnx_logits(session: ort.InferenceSession, batch_ids: list[list[int]], chunk: int = 64) -> np.ndarray:
    """Raw logits of the ONNX model, reviews in chunks of similar length (as edge.device scores them)."""
    out = np.zeros(len(batch_ids), dtype=np.float32)
    order = sorted(range(len(batch_ids)), key=lambda i: len(batch_ids[i]))
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        ids, lengths = pad([batch_ids[i] for i in rows])
        out[rows] = session.run(None, {"ids": ids, "lengths": lengths})[0]
    return out


def torch_logits(model, batch_ids: list[list[int]], batch_size: int = 256) -> np.ndarray:
    """Logits of a ragged-batch model (eager or TorchScript): the served models."""
    with torch.inference_mode():
        parts = [model(*pack(batch_ids[s : s + batch_size])).numpy() for s in range(0, len(batch_ids), batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((is_positive(np.asarray(logits)).astype(int) == labels).mean())


def fitted_to(artifacts: Path, bigram_artifacts: Path) -> dict[str, str]:
    """sha256 of every file a calibration depends on: a retrained model or tokenizer needs `make calibrate`."""
    files = {
        "weights": artifacts / "weights.pt",
        "tokenizer": artifacts / TOKENIZER_DIR / TOKENIZER_FILE,
        "calibration": artifacts / CALIBRATION_FILE,
        "phase2": bigram_artifacts / BIGRAM_FILE,
    }
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}


def calibrate(
    cfg: BundleConfig | None = None,
    artifacts: Path = ARTIFACTS,
    bigram_artifacts: Path = BIGRAM_ARTIFACTS,
    data_dir: Path = DATA_DIR,
    out: Path = CALIBRATION,
) -> dict:
    """Choose the threshold on the validation split, phase 1 calibrated by calibration.json; writes device.json
    and returns it."""
    cfg = cfg or BundleConfig()
    served = load_scorer(artifacts)  # the served model, tokenizer, max_tokens and [UNK], as the handler loads them
    eager = load_eager(artifacts)
    phase2 = torch.jit.load(str(bigram_artifacts / BIGRAM_FILE), map_location="cpu").eval()
    val, _ = evaluation_splits(data_dir, cfg.val_every)
    val_ids = token_ids(served.tokenizer, val.texts)
    with tempfile.TemporaryDirectory() as tmp:
        export(DeviceNet(eager, quantize=True), Path(tmp) / MODEL_FILE)
        int8 = onnx_logits(session(Path(tmp) / MODEL_FILE), val_ids)
    fp32 = torch_logits(served.model, val_ids)
    fitted_calibration = Calibration.load(artifacts / CALIBRATION_FILE)
    p_before = calibration.sigmoid(int8)
    p_after = calibration.sigmoid(fitted_calibration.slope * int8 + fitted_calibration.intercept)
    confidences = np.maximum(p_after, 1 - p_after)
    phase1_correct = (p_after >= 0.5).astype(int) == val.labels  # the device's label: its calibrated probability's
    phase2_correct = is_positive(torch_logits(phase2, val_ids)).astype(int) == val.labels
    chosen = threshold.select_threshold(confidences, phase1_correct, phase2_correct, cfg.tolerance)
    fitted = {
        "threshold": round(chosen.threshold, 6),
        "fitted_to": fitted_to(artifacts, bigram_artifacts),
        "how": {  # for people: where each number came from (edge.device reads only the settings)
            "calibration": {
                "fitted_on": f"IMDB validation split (every {cfg.val_every}th review of train.jsonl.gz), "
                f"the served model's logits ({CALIBRATION_FILE}); measured here on the int8 model's",
                "reviews": len(val.texts),
                "slope": fitted_calibration.slope,
                "intercept": fitted_calibration.intercept,
                "ece_before": round(expected_calibration_error(p_before, val.labels), 4),
                "ece_after": round(expected_calibration_error(p_after, val.labels), 4),
                "log_loss_before": round(calibration.log_loss(p_before, val.labels), 4),
                "log_loss_after": round(calibration.log_loss(p_after, val.labels), 4),
            },
            "quantization": {
                "table": "int8, one fp32 scale per row (max |w| / 127)",
                "accuracy_fp32": round(accuracy(fp32, val.labels), 4),
                "accuracy_int8": round(accuracy(int8, val.labels), 4),
                "label_flip_rate": round(float((is_positive(fp32) != is_positive(int8)).mean()), 5),
                "max_abs_logit_change": round(float(np.abs(fp32 - int8).max()), 5),
            },
            "threshold": {
                "rule": f"the smallest deferral whose accuracy is within {cfg.tolerance * 100:.1f} points of "
                "phase 2 alone, on the validation split",
                "deferred": round(chosen.deferred, 4),
                "accuracy": round(chosen.accuracy, 4),
                "phase1_accuracy": round(float(phase1_correct.mean()), 4),
                "phase2_accuracy": round(float(phase2_correct.mean()), 4),
            },
        },
    }
    out.write_text(json.dumps(fitted, indent=2) + "\n")
    logger.info("wrote %s: %s", out, json.dumps(fitted["how"]))
    return fitted


def build(
    out: Path = DIST,
    cfg: BundleConfig | None = None,
    artifacts: Path = ARTIFACTS,
    bigram_artifacts: Path = BIGRAM_ARTIFACTS,
    calibrated: Path = CALIBRATION,
) -> dict:
    """Write the bundle to `out` (replaced as a whole once complete) from the committed artifacts and their
    calibration; returns its settings. No data needed."""
    cfg = cfg or BundleConfig()
    fitted = json.loads(Path(calibrated).read_text())
    if fitted["fitted_to"] != fitted_to(artifacts, bigram_artifacts):
        raise ValueError(f"{calibrated} was fitted to other model files: run `make calibrate` (it needs the data)")
    served = load_scorer(artifacts)
    eager = load_eager(artifacts)
    fitted_calibration = Calibration.load(artifacts / CALIBRATION_FILE)
    settings = {
        "model_version": cfg.model_version,
        "max_tokens": served.max_tokens,
        "unk_id": served.unk_id,
        "slope": fitted_calibration.slope,
        "intercept": fitted_calibration.intercept,
        "threshold": fitted["threshold"],
        "audit_rate": cfg.audit_rate,
        "phase2_model": cfg.phase2_model,
        "phase2_timeout_s": cfg.phase2_timeout_s,
        "limits": asdict(handler_settings.read().limits),
        "how": fitted["how"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".bundle-") as tmp:
        tmp = Path(tmp)
        export(DeviceNet(eager, quantize=True), tmp / MODEL_FILE)
        shutil.copy2(artifacts / TOKENIZER_DIR / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        out.chmod(0o755)  # mkdtemp's 0700 would hide the bundle from a web server serving it as files
        tmp.mkdir()  # TemporaryDirectory removes its (now empty) directory on exit
    logger.info("wrote %s", out)
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DIST)
    parser.add_argument("--calibrate", action="store_true", help="choose device.json's threshold first")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(2)
    if args.calibrate:
        calibrate(data_dir=args.data_dir)
    build(args.out)


if __name__ == "__main__":
    main()
