"""Readers for the shared data: IMDB JSONL (gzipped) and SST-2 TSV. Nothing here is copied into the project."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def book_split(rows: list[dict], val_every: int) -> tuple[list[dict], list[dict]]:
    """The book's split: of every `val_every` reviews, the last validates and the others train."""
    train = [r for i, r in enumerate(rows) if i % val_every != val_every - 1]
    val = [r for i, r in enumerate(rows) if i % val_every == val_every - 1]
    return train, val


def read_sst2(path: Path) -> tuple[list[str], list[int]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]
