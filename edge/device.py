"""The phase-1 model on the device: the bundle's ONNX model, tokenizer and settings, torch-free.

Tokenization is the server's: the same tokenizer.json, truncated at the same max_tokens, without special tokens
(model/text.py's settings; tests/unit/test_edge_parity.py proves identical ids on real reviews and the bad-input
catalogue's valid texts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from handler.codec import sigmoid
from handler.settings import Limits

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "settings.json"
BUNDLE_FILES = (MODEL_FILE, TOKENIZER_FILE, SETTINGS_FILE)
CHUNK = 64  # reviews per forward pass: padding to the longest of 64 similar lengths wastes little


@dataclass(frozen=True)
class Settings:
    """settings.json: what the device needs besides the model and the tokenizer."""

    model_version: str  # the phase-1 answers' model_version
    max_tokens: int  # truncation, as the server's tokenizer call
    unk_id: int  # [UNK]: the share of these is unknown_token_fraction
    slope: float  # calibrated logit = slope * raw logit + intercept: the served model's calibration.json, fitted
    intercept: float  # on the validation split, so the device's probability is the one the evaluation reads
    threshold: float  # defer to phase 2 when max(p, 1 - p) is below this
    audit_rate: float  # share of confident phase-1 answers also sent to phase 2
    phase2_model: str  # the server model that answers deferred reviews
    phase2_timeout_s: float  # how long a deferred review waits for phase 2 before the device's answer stands
    limits: Limits  # the server's request limits: the device refuses what the server would

    @classmethod
    def read(cls, path: Path) -> Settings:
        raw = json.loads(Path(path).read_text())
        return cls(
            model_version=raw["model_version"],
            max_tokens=int(raw["max_tokens"]),
            unk_id=int(raw["unk_id"]),
            slope=float(raw["slope"]),
            intercept=float(raw["intercept"]),
            threshold=float(raw["threshold"]),
            audit_rate=float(raw["audit_rate"]),
            phase2_model=raw["phase2_model"],
            phase2_timeout_s=float(raw["phase2_timeout_s"]),
            limits=Limits(**raw["limits"]),
        )


@dataclass(frozen=True)
class DeviceScore:
    """One review's phase-1 answer (handler.codec.Scored: the codec encodes it as the server encodes its own)."""

    logit: float  # calibrated: slope * raw logit + intercept
    unknown_fraction: float
    raw_logit: float

    @property
    def confidence(self) -> float:
        return confidence(self.logit)


def confidence(logit: float) -> float:
    """max(p, 1 - p) of a logit: sigmoid(|logit|)."""
    return sigmoid(abs(logit))


def load_tokenizer(path: Path, max_tokens: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens, stride=0, strategy="longest_first", direction="right")
    return tokenizer


class DeviceModel:
    """The bundle loaded: token ids, raw logits and calibrated scores for a batch of texts."""

    def __init__(self, bundle: Path, threads: int = 1) -> None:
        bundle = Path(bundle)
        missing = [name for name in BUNDLE_FILES if not (bundle / name).exists()]
        if missing:
            raise FileNotFoundError(f"{bundle} lacks {', '.join(missing)}: build the bundle with `make edge`")
        self.settings = Settings.read(bundle / SETTINGS_FILE)
        self.tokenizer = load_tokenizer(bundle / TOKENIZER_FILE, self.settings.max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # a phone's app gets a core, not the machine
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(bundle / MODEL_FILE), options, providers=["CPUExecutionProvider"])

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def logits(self, batch_ids: list[list[int]]) -> np.ndarray:
        """Raw (uncalibrated) logits; reviews go through in chunks of similar length."""
        out = np.zeros(len(batch_ids), dtype=np.float32)
        order = sorted(range(len(batch_ids)), key=lambda i: len(batch_ids[i]))
        for start in range(0, len(order), CHUNK):
            rows = order[start : start + CHUNK]
            ids, lengths = pad([batch_ids[i] for i in rows])
            out[rows] = self.session.run(None, {"ids": ids, "lengths": lengths})[0]
        return out

    def score(self, texts: list[str]) -> list[DeviceScore]:
        if not texts:
            return []
        batch_ids = self.token_ids(texts)
        raw = self.logits(batch_ids)
        scores = []
        for ids, logit in zip(batch_ids, raw.tolist(), strict=True):
            unknown = sum(1 for i in ids if i == self.settings.unk_id) / len(ids) if ids else 1.0
            calibrated = self.settings.slope * logit + self.settings.intercept
            scores.append(DeviceScore(calibrated, unknown, logit))
        return scores


def pad(batch_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token-id lists -> (ids [batch, longest] padded with 0, lengths [batch]), the ONNX model's inputs.

    model.onnx_export.pad is the same function on the build side (it may not import this package, nor this
    package it); tests/unit/test_edge_parity.py holds them together."""
    lengths = np.array([len(ids) for ids in batch_ids], dtype=np.int64)
    ids = np.zeros((len(batch_ids), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
    for row, review in enumerate(batch_ids):
        ids[row, : len(review)] = review
    return ids, lengths
