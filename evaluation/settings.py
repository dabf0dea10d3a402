"""The evaluation job's settings: one frozen dataclass, built by the command line and the tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.alerts import SHIPPED as SHIPPED_ALERTS

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class EvaluationSettings:
    captures: Path = Path("captures")  # the handler's capture directory (make serve writes ./captures)
    feedback: Path = Path("feedback")  # label files (JSONL, CSV, Parquet) and what `label` appends
    batch_outputs: tuple[Path, ...] = ()  # batch job outputs read as predictions too
    batch_key: str = "key"  # their key column, where an output's summary.json does not name it
    window_s: int = 86400  # tumbling windows, aligned to the epoch (UTC midnight for 1d)
    model_store: Path = Path("model_store")  # where each version's archive (baseline, calibration) is found
    model_name: str | None = None  # None: every model found in the captures and batch outputs
    runs: Path = Path("evaluation-runs")  # run directories, and `latest` pointing at the newest
    alerts: Path = SHIPPED_ALERTS  # the alert rules
    master: str | None = "local[*]"  # None: the one spark-submit was given
    conf: dict[str, str] = field(default_factory=dict)  # extra spark.* settings


def parse_window(text: str) -> int:
    """'1h', '1d', '15m', '30s' or a number of seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(text))
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"window must be a positive number of seconds or like 30s, 15m, 1h, 1d; got {text!r}")
    return int(match.group(1)) * UNITS[match.group(2) or "s"]
