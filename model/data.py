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
SST2_TRAIN = Path("sst2") / "train.tsv"  # 67,349 labeled phrases and sentences: the short register, trained on
SST2_DEV = Path("sst2") / "dev.tsv"  # 872 labeled sentences: the short register's validation split


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


def training_rows(data_dir: Path, val_every: int, sst2_weight: float) -> tuple[list[dict], list[dict]]:
    """Both registers' training rows ({"text", "label", "weight", "register"}: IMDB's training split at weight 1,
    then SST-2 train at `sst2_weight`; weight 0 leaves SST-2 out), and IMDB's validation split. SST-2 dev is the
    short register's validation split (`read_sst2(data_dir / SST2_DEV)`)."""
    train, val = book_split(read_jsonl(data_dir / IMDB_TRAIN), val_every)
    rows = [{"text": r["text"], "label": int(r["label"]), "weight": 1.0, "register": "imdb"} for r in train]
    if sst2_weight > 0:
        texts, labels = read_sst2(data_dir / SST2_TRAIN)
        rows += [
            {"text": t, "label": y, "weight": sst2_weight, "register": "sst2"}
            for t, y in zip(texts, labels, strict=True)
        ]
    return rows, val
