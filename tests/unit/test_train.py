"""Training end to end on a tiny corpus: every file `make train` writes, the baseline and calibration included
(the archive ships them and a retrain's candidate is built the same way)."""

from __future__ import annotations

import gzip
import json
import random
import zipfile
from dataclasses import replace
from pathlib import Path

from model.baseline import BASELINE_FILE
from model.config import ModelConfig
from model.data import IMDB_TRAIN, SST2_DEV, SST2_TRAIN
from model.platt import CALIBRATION_FILE
from model.train import train

WORDS = {1: ["great", "moving", "superb"], 0: ["dull", "awful", "boring"]}
FILLER = ["the", "film", "plot", "actor", "scene", "was", "and", "a", "story"]


def review(rng: random.Random, label: int) -> str:
    words = rng.choices(FILLER, k=rng.randint(5, 30)) + rng.choices(WORDS[label], k=2)
    rng.shuffle(words)
    return " ".join(words)


def corpus(data: Path, rng: random.Random) -> None:
    """A data directory as `make train` reads it: 400 labeled reviews, 80 SST-2 training phrases, 40 dev ones."""
    (data / IMDB_TRAIN).parent.mkdir(parents=True)
    (data / SST2_DEV).parent.mkdir(parents=True)
    with gzip.open(data / IMDB_TRAIN, "wt", encoding="utf-8") as f:
        for i in range(400):  # labels alternate in fours: the validation split (every 4th) holds both classes
            label = (i // 4) % 2
            f.write(json.dumps({"id": i, "text": review(rng, label), "label": label}) + "\n")
    rows = "".join(f"{review(rng, i % 2)}\t{i % 2}\n" for i in range(40))
    (data / SST2_DEV).write_text("sentence\tlabel\n" + rows)
    phrases = "".join(f"{' '.join(rng.choices(WORDS[i % 2], k=2))}\t{i % 2}\n" for i in range(80))
    (data / SST2_TRAIN).write_text("sentence\tlabel\n" + phrases)


def test_training_writes_the_model_its_baseline_and_its_calibration(tmp_path):
    data = tmp_path / "data"
    corpus(data, random.Random(0))
    out = tmp_path / "artifacts"
    cfg = replace(ModelConfig(), epochs=2, vocab_size=50, min_frequency=1, max_tokens=64)
    extra = [{"text": "superb superb", "label": 1}]
    metrics = train(cfg, data, out, extra_rows=extra)
    assert {"tokenizer", "config.json", "weights.pt", "metrics.json", BASELINE_FILE, CALIBRATION_FILE} <= {
        p.name for p in out.iterdir()
    }
    assert metrics["train_reviews"] == 300 + len(extra) and metrics["val_reviews"] == 100
    assert metrics["train_sst2_phrases"] == 80 and metrics["sst2_dev_sentences"] == 40
    baseline = json.loads((out / BASELINE_FILE).read_text())
    assert baseline["n"] == 100 and baseline["accuracy"] == metrics["val_accuracy"]


def test_a_retrained_models_archive_answers_as_it_trained(tmp_path):
    """A candidate trained on new data has a vocabulary of its own: its archive must carry that tokenizer, not the
    shipped model's, or its ids mean other words and it answers nonsense (the retrain gate would refuse it)."""
    from evaluation.retrain import accuracy_of
    from model.data import book_split, read_jsonl
    from model.export import export
    from model.infer import TOKENIZER_DIR
    from serving.build.archive import build

    data, out = tmp_path / "data", tmp_path / "artifacts"
    corpus(data, random.Random(1))
    cfg = replace(ModelConfig(), epochs=2, vocab_size=50, min_frequency=1, max_tokens=64)
    metrics = train(cfg, data, out)
    export(out)
    archive = build("sentiment", "2.0", tmp_path / "store", artifacts=out)
    with zipfile.ZipFile(archive) as z:
        assert z.read(f"{TOKENIZER_DIR}/tokenizer.json") == (out / TOKENIZER_DIR / "tokenizer.json").read_bytes()
    _, val = book_split(read_jsonl(data / IMDB_TRAIN), cfg.val_every)
    right = accuracy_of(archive, [r["text"] for r in val], [r["label"] for r in val])
    assert sum(right) / len(right) == metrics["val_accuracy"]
