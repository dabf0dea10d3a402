"""Training end to end on a tiny corpus: every file `make train` writes, the baseline and calibration included
(the archive ships them and a retrain's candidate is built the same way)."""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import replace

from model.baseline import BASELINE_FILE
from model.config import ModelConfig
from model.data import IMDB_TRAIN, SST2_DEV
from model.platt import CALIBRATION_FILE
from model.train import train

WORDS = {1: ["great", "moving", "superb"], 0: ["dull", "awful", "boring"]}
FILLER = ["the", "film", "plot", "actor", "scene", "was", "and", "a", "story"]


def review(rng: random.Random, label: int) -> str:
    words = rng.choices(FILLER, k=rng.randint(5, 30)) + rng.choices(WORDS[label], k=2)
    rng.shuffle(words)
    return " ".join(words)


def test_training_writes_the_model_its_baseline_and_its_calibration(tmp_path):
    rng = random.Random(0)
    data = tmp_path / "data"
    (data / IMDB_TRAIN).parent.mkdir(parents=True)
    (data / SST2_DEV).parent.mkdir(parents=True)
    with gzip.open(data / IMDB_TRAIN, "wt", encoding="utf-8") as f:
        for i in range(400):
            f.write(json.dumps({"id": i, "text": review(rng, i % 2), "label": i % 2}) + "\n")
    rows = "".join(f"{review(rng, i % 2)}\t{i % 2}\n" for i in range(40))
    (data / SST2_DEV).write_text("sentence\tlabel\n" + rows)
    out = tmp_path / "artifacts"
    cfg = replace(ModelConfig(), epochs=2, vocab_size=50, min_frequency=1, max_tokens=64)
    extra = [{"text": "superb superb", "label": 1}]
    metrics = train(cfg, data, out, extra_rows=extra)
    assert {"tokenizer", "config.json", "weights.pt", "metrics.json", BASELINE_FILE, CALIBRATION_FILE} <= {
        p.name for p in out.iterdir()
    }
    assert metrics["train_reviews"] == 300 + len(extra) and metrics["val_reviews"] == 100
    baseline = json.loads((out / BASELINE_FILE).read_text())
    assert baseline["n"] == 100 and baseline["accuracy"] == metrics["val_accuracy"]
