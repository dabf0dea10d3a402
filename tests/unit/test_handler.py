"""The handler class end to end in-process: decode -> tokenize -> TorchScript -> sigmoid -> encode."""

from __future__ import annotations

import json

import pytest
import yaml

from handler import settings
from handler.sentiment_handler import SentimentHandler
from tests.conftest import BOOK_REVIEWS, PREDICTION_FIELDS
from tests.unit.fake_context import batch, make_context


def run(served, bodies):
    handler, context = served
    replies = handler.handle(batch(context, bodies), context)
    assert len(replies) == len(bodies)  # exactly one answer per request
    out = []
    for idx, reply in enumerate(replies):
        assert isinstance(reply, bytes)
        assert context.get_response_content_type(idx) == "application/json"
        out.append((context.get_response_status(idx)[0], json.loads(reply)))
    return out


def test_every_format_in_one_batch(served):
    text = BOOK_REVIEWS["positive"]
    (s1, plain), (s2, single), (s3, many) = run(
        served,
        [
            (text.encode(), "text/plain"),
            (json.dumps({"text": text, "key": "a"}).encode(), "application/json"),
            (
                json.dumps({"instances": [{"reviews": text, "key": 7}, {"text": text}, text]}).encode(),
                "application/json",
            ),
        ],
    )
    assert (s1, s2, s3) == (200, 200, 200)
    assert set(plain) == PREDICTION_FIELDS
    assert set(single) == PREDICTION_FIELDS | {"key"} and single["key"] == "a"
    assert [p.get("key") for p in many["predictions"]] == [7, None, None]
    probabilities = {plain["positive_review_probability"], single["positive_review_probability"]}
    probabilities |= {p["positive_review_probability"] for p in many["predictions"]}
    assert max(probabilities) - min(probabilities) < 1e-6  # batch composition does not change an answer
    assert plain["label"] == "positive" and plain["model_version"] == "1.0"


def test_already_decoded_bodies_are_accepted(served):
    """With TorchServe's own input decoding on, bodies arrive as str/dict: same answers."""
    text = BOOK_REVIEWS["negative"]
    (s1, a), (s2, b) = run(served, [(text, "text/plain"), ({"text": text, "key": "k"}, "application/json")])
    assert s1 == s2 == 200
    assert a["positive_review_logits"] == pytest.approx(b["positive_review_logits"], abs=1e-6)
    assert b["key"] == "k" and a["label"] == "negative"


def test_bad_request_is_answered_alone(served):
    good = json.dumps({"text": BOOK_REVIEWS["positive"], "key": "good"}).encode()
    results = run(served, [(good, "application/json"), (b"{not json", "application/json"), (good, "application/json")])
    assert [s for s, _ in results] == [200, 400, 200]
    assert results[1][1]["error"]["code"] == "invalid_json"
    assert results[0][1]["key"] == results[2][1]["key"] == "good"


def test_bad_instance_gets_an_error_in_its_slot(served):
    body = {"instances": [{"text": BOOK_REVIEWS["positive"], "key": 1}, {"text": ""}, 42, {"key": 3, "text": "ok"}]}
    [(status, answer)] = run(served, [(json.dumps(body).encode(), "application/json")])
    assert status == 200
    slots = answer["predictions"]
    assert slots[0]["key"] == 1 and slots[3]["key"] == 3 and "label" in slots[3]
    assert slots[1]["error"]["code"] == "empty_text"
    assert slots[2]["error"]["code"] == "invalid_instance"


def test_scoring_failure_is_a_generic_500_for_the_batch(served, monkeypatch):
    handler, _ = served

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("handler.sentiment_handler.score", broken)  # the model call inside handler.predict
    results = run(served, [(b"fine review", "text/plain"), (b"another", "text/plain")])
    for status, body in results:
        assert status == 500
        assert body["error"]["code"] == "internal_error"
        assert "secret" not in body["error"]["message"]


def test_handler_settings_fail_fast():
    shipped = {"max_chars": 10, "max_instances": 3, "max_key_chars": 4, "torch_threads": 2}
    with pytest.raises(ValueError, match=r"unknown settings \['typo'\]"):
        settings.parse({"handler": {**shipped, "typo": 1}})
    with pytest.raises(ValueError, match=r"missing settings \['max_instances'\]"):
        settings.parse({"handler": {k: v for k, v in shipped.items() if k != "max_instances"}})
    with pytest.raises(ValueError, match=">= 1"):
        settings.parse({"handler": {**shipped, "torch_threads": 0}})
    parsed = settings.parse({"handler": shipped})
    assert parsed.limits.max_chars == 10 and parsed.limits.max_instances == 3 and parsed.torch_threads == 2


def test_out_of_vocabulary_reviews_say_so(served):
    """A review of words the model never saw gets its prior, flagged; a review it knows is not flagged."""
    [(_, meh), (_, emoji), (_, french), (_, known), (_, half)] = run(
        served,
        [
            (b"meh", "text/plain"),
            ("🎬🍿".encode(), "text/plain"),
            ("Magnifique, épatant, bouleversant".encode(), "text/plain"),
            (BOOK_REVIEWS["positive"].encode(), "text/plain"),
            (b"great zzqxv", "text/plain"),
        ],
    )
    assert meh["out_of_vocabulary"] and meh["unknown_token_fraction"] == 1.0
    assert emoji["out_of_vocabulary"] and emoji["unknown_token_fraction"] == 1.0
    assert french["out_of_vocabulary"] and french["unknown_token_fraction"] > 0.5
    assert not known["out_of_vocabulary"] and known["unknown_token_fraction"] == 0.0
    assert not half["out_of_vocabulary"] and half["unknown_token_fraction"] == 0.5


def test_initialize_fails_fast_with_a_fix(tmp_path):
    context = make_context(tmp_path, model_yaml_config=yaml.safe_load(settings.SHIPPED_MODEL_CONFIG.read_text()))
    with pytest.raises(FileNotFoundError, match="make export archive"):
        SentimentHandler().initialize(context)
