"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAR = ROOT / "model_store" / "sentiment.mar"
DATA_DIR = ROOT.parent / "shared" / "data"
BOOK_REVIEWS = {
    "positive": "The film is fast moving and has several great action scenes.",
    "neutral": "The film is based on a prize-winning novel.",
    "negative": "The film was very boring. I walked out half-way.",
}


@pytest.fixture(scope="session")
def mar_path() -> Path:
    if not MAR.exists():
        pytest.fail(f"{MAR} is missing: run `make archive` (make test builds it)")
    return MAR


@pytest.fixture(scope="session")
def model_dir(mar_path: Path, tmp_path_factory) -> Path:
    """The .mar unpacked, as TorchServe unpacks it for a worker."""
    out = tmp_path_factory.mktemp("mar")
    with zipfile.ZipFile(mar_path) as archive:
        archive.extractall(out)
    return out


def sample_reviews(n: int, seed: int = 0) -> list[str]:
    """Real IMDB reviews when the shared data is there, else deterministic synthetic ones of varied length."""
    import random

    path = DATA_DIR / "imdb" / "unsup.jsonl.gz"
    if path.exists():
        import gzip
        import json

        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [json.loads(next(f))["text"] for _ in range(n)]
    rng = random.Random(seed)
    words = ["the", "film", "great", "boring", "plot", "awful", "brilliant", "story", "<br />", "!"]
    return [" ".join(rng.choice(words) for _ in range(rng.choice([1, 5, 40, 300, 2000]))) for _ in range(n)]
