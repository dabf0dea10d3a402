"""The batch job and the online TorchServe answer the same for the same texts: one archive, one code path."""

from __future__ import annotations

from batch.job import run
from batch.settings import JobSettings
from bench.reviews import load_reviews
from tests.batch.conftest import read_output, write_jsonl
from tests.conftest import BOOK_REVIEWS


def test_batch_predictions_equal_the_online_servers(spark, server, mar_path, tmp_path):
    texts = [*BOOK_REVIEWS.values(), *load_reviews(150), "", "   ", 42, None, ["a list"], "emoji 🎬 and 日本語"]
    rows = [{"key": f"k{i}", "text": t} for i, t in enumerate(texts)]
    settings = JobSettings(input=write_jsonl(tmp_path / "in.jsonl", rows), output=tmp_path / "out", mar=mar_path)
    summary = run(spark, settings)
    batch = read_output(spark, settings.output, json_keys=True)

    online = []
    for start in range(0, len(rows), 100):
        online += server.client.predict_many([{"text": r["text"], "key": r["key"]} for r in rows[start : start + 100]])
    assert summary.rows == len(online) == len(rows) and summary.errors == 5

    worst = 0.0
    for i, answer in enumerate(online):
        (row,) = batch[f"k{i}"]
        if "error" in answer:
            assert row["error"] == answer["error"]["code"] and row["error_message"] == answer["error"]["message"]
            continue
        assert answer["key"] == f"k{i}" and row["error"] is None
        assert row["label"] == answer["label"] and row["model_version"] == answer["model_version"]
        worst = max(worst, abs(row["positive_review_probability"] - answer["positive_review_probability"]))
        assert abs(row["positive_review_logits"] - answer["positive_review_logits"]) < 1e-5
    assert worst < 1e-6
