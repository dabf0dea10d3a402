"""The reviews every benchmark and test sends: real IMDB text when the data is there, else synthetic reviews."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from model.data import DATA_DIR, IMDB_UNSUP, read_jsonl


def load_reviews(n: int, path: Path = DATA_DIR / IMDB_UNSUP, seed: int = 0) -> list[str]:
    """The first `n` reviews of IMDB's unsup split (their lengths vary as real traffic does); without the data,
    deterministic synthetic reviews of varied length, so that a clone without the data still runs."""
    if path.exists():
        return [r["text"] for r in read_jsonl(path, limit=n)]
    rng = random.Random(seed)
    words = ["the", "film", "great", "boring", "plot", "awful", "brilliant", "story", "acting", "<br />", "!"]
    return [" ".join(rng.choice(words) for _ in range(rng.choice([1, 5, 40, 230, 600, 2000]))) for _ in range(n)]


def first_sentences(reviews: list[str], max_chars: int = 200) -> list[str]:
    """The first sentence of each review (like the book's one-line examples): per-request costs dominate."""
    out = []
    for review in reviews:
        text = re.sub(r"<br\s*/?>", " ", review).strip()
        out.append(re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0][:max_chars] or text[:max_chars])
    return out


def review_mix(name: str, n: int) -> list[str]:
    """`imdb`: whole IMDB reviews (mean ~1,300 characters); `sentence`: their first sentences."""
    reviews = load_reviews(n)
    return first_sentences(reviews) if name == "sentence" else reviews


MIXES = ("sentence", "imdb")


def single_bodies(reviews: list[str]) -> list[bytes]:
    """One `{"text": ..., "key": ...}` request body per review."""
    return [json.dumps({"text": r, "key": f"r{i}"}).encode() for i, r in enumerate(reviews)]


def instance_bodies(reviews: list[str], size: int) -> list[bytes]:
    """`{"instances": [...]}` bodies of `size` keyed reviews each, cycling through the reviews."""
    bodies = []
    for start in range(0, len(reviews) - size + 1, size):
        chunk = reviews[start : start + size]
        bodies.append(json.dumps({"instances": [{"text": r, "key": start + i} for i, r in enumerate(chunk)]}).encode())
    return bodies
