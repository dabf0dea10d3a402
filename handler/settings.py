"""The handler's settings: the `handler:` section of model-config.yaml, the one place they are written.

Torch-free and TorchServe-free, so that the codec, the batch job on Spark executors and the tests read the same
limits the served archive carries without importing either.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

MODEL_CONFIG = "model-config.yaml"  # torch-model-archiver stores --config-file under this name in the .mar
SHIPPED_MODEL_CONFIG = Path(__file__).resolve().parents[1] / MODEL_CONFIG


@dataclass(frozen=True)
class Limits:
    """What one request may hold; beyond these the codec refuses with 413 or 400 (handler.errors)."""

    max_chars: int  # characters per review (413 text_too_long); tokens beyond max_tokens are truncated instead
    max_instances: int  # instances per request (413 too_many_instances)
    max_key_chars: int  # characters per key (400 invalid_key): keys are identifiers, not payloads


@dataclass(frozen=True)
class CaptureSettings:
    """`handler.capture`: every answered instance appended to files for Continued Model Evaluation (handler.capture).

    Every field has a default, so an archive whose model-config.yaml has no `capture:` section captures as below."""

    enabled: bool = True  # the evaluation job joins these records with ground truth by key; off: nothing is written
    directory: str = "captures"  # relative: to the TorchServe frontend's working directory (where it was started)
    capture_text: bool = False  # review text is user data: never written unless asked for (retraining needs it)
    text_sample_rate: float = 1.0  # with capture_text: the share of instances whose text is kept
    retention_hours: int = 720  # hour partitions older than this are deleted: captured data does not pile up forever
    queue_batches: int = 1000  # batches waiting for the writer thread; beyond that they are dropped and counted, so
    # a stalled disk never holds a prediction back
    error_log_every_s: float = 60.0  # a failing capture logs at most once per interval (it is counted every time)


@dataclass(frozen=True)
class HandlerSettings:
    limits: Limits
    torch_threads: int  # per worker: TorchServe sets none, and workers would fight over the cores
    capture: CaptureSettings = CaptureSettings()  # what the handler records for evaluation, and where


LIMIT_NAMES = tuple(f.name for f in fields(Limits))
NAMES = (*LIMIT_NAMES, "torch_threads")
CAPTURE_NAMES = tuple(f.name for f in fields(CaptureSettings))


def parse(model_yaml_config: dict | None) -> HandlerSettings:
    """Settings from a parsed model-config.yaml; any missing, unknown or non-positive setting fails now."""
    section = dict((model_yaml_config or {}).get("handler") or {})
    capture = parse_capture(section.pop("capture", None))
    unknown = sorted(set(section) - set(NAMES))
    missing = [name for name in NAMES if name not in section]
    if unknown or missing:
        raise ValueError(f"{MODEL_CONFIG} handler: unknown settings {unknown}, missing settings {missing}")
    values = {name: int(section[name]) for name in NAMES}
    if min(values.values()) < 1:
        raise ValueError(f"{MODEL_CONFIG} handler: torch_threads and every limit must be >= 1")
    limits = Limits(**{name: values[name] for name in LIMIT_NAMES})
    return HandlerSettings(limits, values["torch_threads"], capture)


def parse_capture(section: dict | None) -> CaptureSettings:
    """`handler.capture` (absent: the defaults); an unknown name or an impossible value fails now."""
    section = section or {}
    unknown = sorted(set(section) - set(CAPTURE_NAMES))
    if unknown:
        raise ValueError(f"{MODEL_CONFIG} handler.capture: unknown settings {unknown}")
    defaults = CaptureSettings()
    values = {name: type(getattr(defaults, name))(section.get(name, getattr(defaults, name))) for name in CAPTURE_NAMES}
    for name in ("enabled", "capture_text"):
        if not isinstance(section.get(name, False), bool):
            raise ValueError(f"{MODEL_CONFIG} handler.capture.{name} must be true or false")
    if not 0.0 <= values["text_sample_rate"] <= 1.0:
        raise ValueError(f"{MODEL_CONFIG} handler.capture.text_sample_rate must be within [0, 1]")
    if min(values["retention_hours"], values["queue_batches"]) < 1 or values["error_log_every_s"] <= 0:
        raise ValueError(f"{MODEL_CONFIG} handler.capture: retention_hours, queue_batches, error_log_every_s > 0")
    if not values["directory"]:
        raise ValueError(f"{MODEL_CONFIG} handler.capture.directory must not be empty")
    return CaptureSettings(**values)


def read(path: Path = SHIPPED_MODEL_CONFIG) -> HandlerSettings:
    """Settings from a model-config.yaml file: the shipped one, or the copy inside an unpacked archive."""
    return parse(yaml.safe_load(Path(path).read_text()))
