"""Readers for the shared data: IMDB JSONL (gzipped) and SST-2 TSV. Nothing here is copied into the project."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
from pathlib import Path

# The data directory: beside the repository by default (../shared/data); SENTIMENT_DATA_DIR, or `make ...
# DATA_DIR=...`, points elsewhere. Nothing under it is ever copied into the project.
DATA_DIR = Path(os.environ.get("SENTIMENT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
IMDB_TRAIN = Path("imdb") / "train.jsonl.gz"  # 25,000 labeled reviews: id, text, rating, label
IMDB_UNSUP = Path("imdb") / "unsup.jsonl.gz"  # 50,000 unlabeled reviews
SST2_DEV = Path("sst2") / "dev.tsv"  # short phrases: out of domain


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    """The records of a JSONL file (gzipped or not), the first `limit` of them if given."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in itertools.islice((line for line in f if line.strip()), limit)]


def book_split(rows: list[dict], val_every: int) -> tuple[list[dict], list[dict]]:
    """The book's split: of every `val_every` reviews, the last validates and the others train."""
    train = [r for i, r in enumerate(rows) if i % val_every != val_every - 1]
    val = [r for i, r in enumerate(rows) if i % val_every == val_every - 1]
    return train, val


def read_sst2(path: Path) -> tuple[list[str], list[int]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]
