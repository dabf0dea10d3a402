"""The inference API of a real TorchServe, over HTTP with requests."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import BOOK_REVIEWS, PREDICTION_FIELDS


def test_text_plain(server):
    r = server.client.predict_raw(BOOK_REVIEWS["positive"], "text/plain")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["label"] == "positive" and "key" not in body
    assert 0.5 < body["positive_review_probability"] <= 1.0


def test_json_with_key(server):
    body = server.client.predict(BOOK_REVIEWS["negative"], key="review-42")
    assert body["key"] == "review-42" and body["label"] == "negative"
    assert set(body) == PREDICTION_FIELDS | {"key"}


def test_instances_keep_order_and_keys(server):
    instances = [
        {"reviews": BOOK_REVIEWS["positive"], "key": 1},
        {"text": BOOK_REVIEWS["negative"], "key": "b"},
        BOOK_REVIEWS["neutral"],
    ]
    predictions = server.client.predict_many(instances)
    assert [p.get("key") for p in predictions] == [1, "b", None]
    assert [p["label"] for p in predictions[:2]] == ["positive", "negative"]


def test_books_three_reviews_are_ordered(server):
    p = {name: server.client.predict(text)["positive_review_probability"] for name, text in BOOK_REVIEWS.items()}
    assert p["positive"] > 0.5 > p["negative"]
    assert p["positive"] > p["neutral"] > p["negative"]


def test_malformed_request_gets_json_4xx(server):
    r = server.client.predict_raw(b"{oops", "application/json")
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == "invalid_json"


def test_concurrent_keyed_requests_get_their_own_keys(server):
    """200 keyed requests from 16 threads, batched by the server: each answer carries its own key and the
    answer its own text gets alone."""
    texts = [BOOK_REVIEWS["positive"], BOOK_REVIEWS["negative"], BOOK_REVIEWS["neutral"]]
    alone = [server.client.predict(t)["positive_review_logits"] for t in texts]

    def call(i: int) -> tuple[int, dict]:
        r = server.client.predict_raw(json.dumps({"text": texts[i % 3], "key": f"k{i}"}), "application/json")
        return i, r.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(200)))
    for i, body in results:
        assert body["key"] == f"k{i}"
        assert abs(body["positive_review_logits"] - alone[i % 3]) < 1e-5
