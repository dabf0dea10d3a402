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
class HandlerSettings:
    limits: Limits
    torch_threads: int  # per worker: TorchServe sets none, and workers would fight over the cores


LIMIT_NAMES = tuple(f.name for f in fields(Limits))
NAMES = (*LIMIT_NAMES, "torch_threads")


def parse(model_yaml_config: dict | None) -> HandlerSettings:
    """Settings from a parsed model-config.yaml; any missing, unknown or non-positive setting fails now."""
    section = (model_yaml_config or {}).get("handler") or {}
    unknown = sorted(set(section) - set(NAMES))
    missing = [name for name in NAMES if name not in section]
    if unknown or missing:
        raise ValueError(f"{MODEL_CONFIG} handler: unknown settings {unknown}, missing settings {missing}")
    values = {name: int(section[name]) for name in NAMES}
    if min(values.values()) < 1:
        raise ValueError(f"{MODEL_CONFIG} handler: torch_threads and every limit must be >= 1")
    limits = Limits(**{name: values[name] for name in LIMIT_NAMES})
    return HandlerSettings(limits, values["torch_threads"])


def read(path: Path = SHIPPED_MODEL_CONFIG) -> HandlerSettings:
    """Settings from a model-config.yaml file: the shipped one, or the copy inside an unpacked archive."""
    return parse(yaml.safe_load(Path(path).read_text()))
