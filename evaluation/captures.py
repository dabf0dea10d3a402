"""Read the handler's capture files in plain Python (tests, small replays); the Spark job reads the same layout.

A worker killed mid-write leaves at most one torn line at the end of its file: it is skipped and counted, never
an error. Blank lines (the writer's own separator after a failed write) are skipped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

PATTERN = "model=*/version=*/hour=*/*.jsonl"


@dataclass
class Captured:
    records: list[dict] = field(default_factory=list)
    torn: int = 0  # lines that are not a JSON object: a write cut short
    files: int = 0


def files(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob(PATTERN))


def read(directory: Path) -> Captured:
    out = Captured()
    for path in files(directory):
        out.files += 1
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    out.torn += 1
                    continue
                if isinstance(record, dict):
                    out.records.append(record)
                else:
                    out.torn += 1
    return out
