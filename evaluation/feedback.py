"""Ground truth: label files in a feedback directory, and a command that appends one label.

    python -m evaluation label KEY positive|negative|1|0 [--feedback feedback/] [--labeled-at ISO-TIME]

Files: JSONL (*.jsonl, *.json, gzipped too), CSV (*.csv, with a header) or Parquet (*.parquet), anywhere under the
feedback directory, with the columns `key`, `label` (0/1, positive/negative, pos/neg, true/false) and optionally
`labeled_at` (ISO 8601 UTC time or epoch seconds). A bad row (no key, an unreadable label or time) is reported
with its reason and skipped, never a failed job.

The rules the Spark job and the plain-Python reference both follow (README: Continued evaluation):
  - keys are compared by evaluation.keys: 7, "7" and 7.0 are one key, whichever file or output held them;
  - a key labeled twice keeps its latest label: the latest `labeled_at` (a row without one takes its file's
    modification time), then the later file name, then the later row; duplicates and conflicting duplicates are
    counted;
  - a label whose key matches no keyed prediction is counted as unmatched (it may match a later run's captures).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

from evaluation.keys import canonical

POSITIVE = frozenset({"1", "positive", "pos", "true"})
NEGATIVE = frozenset({"0", "negative", "neg", "false"})
FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
APPENDED = "labels.jsonl"  # what the label command appends to


def parse_label(value: object) -> int | None:
    """0 or 1 from any accepted spelling; None when it is none of them."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value) if value in (0, 1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in POSITIVE:
            return 1
        if text in NEGATIVE:
            return 0
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number in (0.0, 1.0) else None
    return None


def parse_time(value: object) -> float | None:
    """Epoch seconds from ISO 8601 text (no zone: UTC) or a number; raises ValueError when unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("not a finite time")
        return float(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def files(directory: Path) -> list[Path]:
    """Label files under `directory`, by format, sorted by name (the tie-break of equal times)."""
    directory = Path(directory)
    if not directory.exists():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and format_of(p) is not None)


def format_of(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    return next((fmt for suffix, fmt in FORMATS.items() if name.endswith(suffix)), None)


def append(directory: Path, key: str, label: object, labeled_at: float | None = None) -> Path:
    """Append one label to <directory>/labels.jsonl; refuses a label it could not read back."""
    value = parse_label(label)
    if value is None:
        raise ValueError(f"label must be 0/1 or positive/negative, got {label!r}")
    if canonical(key) is None:
        raise ValueError("key must not be empty")
    when = dt.datetime.now(dt.UTC) if labeled_at is None else dt.datetime.fromtimestamp(labeled_at, dt.UTC)
    row = {"key": key, "label": value, "labeled_at": when.isoformat().replace("+00:00", "Z")}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / APPENDED
    # one write of one line in append mode: concurrent appenders interleave whole lines
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    return path


def read_rows(directory: Path | None) -> list[dict]:
    """Every label row of every file, in plain Python (the retrain gate, tests): key, label, labeled_at as written,
    with where each came from (`file` as a URI, `file_time`, `row`) for the latest-label rule."""
    rows: list[dict] = []
    for path in files(directory) if directory is not None else []:
        fmt, file_time, uri = format_of(path), path.stat().st_mtime, path.resolve().as_uri()
        for idx, row in enumerate(_records(path, fmt)):
            rows.append({**{k: row.get(k) for k in ("key", "label", "labeled_at")}, "file": uri,
                         "file_time": file_time, "row": idx})  # fmt: skip
    return rows


def _records(path: Path, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        import gzip

        opener = gzip.open if path.name.endswith(".gz") else open
        out = []
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    try:
                        value = json.loads(line)
                    except ValueError:
                        value = {}
                    out.append(value if isinstance(value, dict) else {})
        return out
    if fmt == "parquet":  # pyarrow, not pandas: an int64 key column with a null would become float there
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame.astype(object).where(frame.notna(), None)
    return [{k: (None if v == "" else v) for k, v in r.items()} for r in frame.to_dict("records")]
