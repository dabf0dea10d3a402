"""The bad-input catalogue through the handler in-process, each case batched between two good requests."""

from __future__ import annotations

import json

import pytest

from tests.catalogue import CASES, GOOD, JSON, Case, check
from tests.unit.fake_context import batch


def handle(served, bodies: list[tuple[bytes, str | None]]) -> list[tuple[int, dict]]:
    handler, context = served
    replies = handler.handle(batch(context, bodies), context)
    assert len(replies) == len(bodies)
    return [(context.get_response_status(i)[0], json.loads(reply)) for i, reply in enumerate(replies)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_answers_alone_and_neighbours_are_scored(served, case: Case):
    good = json.dumps({"text": GOOD, "key": "neighbour"}).encode()
    before, (status, body), after = handle(served, [(good, JSON), (case.body, case.content_type), (good, JSON)])
    if case.server_only:  # TorchServe refuses it first; the handler's own cap refuses it as well
        assert status == 413 and body["error"]["code"] == "text_too_long"
    else:
        check(case, status, body)
    for neighbour in (before, after):
        assert neighbour[0] == 200 and neighbour[1]["key"] == "neighbour" and neighbour[1]["label"] == "positive"


def test_duplicate_keys_are_answered_in_order(served):
    [case] = [c for c in CASES if c.name.startswith("duplicate keys")]
    [(status, body)] = handle(served, [(case.body, case.content_type)])
    assert status == 200
    assert [(p["key"], p["label"]) for p in body["predictions"]] == [("k", "positive"), ("k", "negative")]


def test_all_cases_in_one_batch(served):
    results = handle(served, [(c.body, c.content_type) for c in CASES if not c.server_only])
    for case, (status, body) in zip([c for c in CASES if not c.server_only], results, strict=True):
        check(case, status, body)


def test_a_request_that_breaks_scoring_fails_alone(served, monkeypatch, caplog):
    """A bug triggered by one input: that request gets a generic 500 naming its request id, its batch
    neighbours are scored one by one and answered normally, and the log holds neither text nor message."""
    handler, _ = served
    real_predict = handler.predict
    canary = "canary-7f3a9c unexpected input"

    def predict(texts):
        if any("canary-7f3a9c" in t for t in texts):
            raise RuntimeError(f"bug internals {texts}")
        return real_predict(texts)

    monkeypatch.setattr(handler, "predict", predict)
    good = json.dumps({"text": GOOD, "key": "g"}).encode()
    with caplog.at_level("INFO"):
        results = handle(served, [(good, JSON), (canary.encode(), "text/plain"), (good, JSON)])
    assert [s for s, _ in results] == [200, 500, 200]
    assert results[0][1]["key"] == results[2][1]["key"] == "g"
    error = results[1][1]["error"]
    assert error["code"] == "internal_error" and "req-1" in error["message"]
    assert "internals" not in error["message"] and "canary" not in error["message"]
    assert "req-1" in caplog.text and "RuntimeError" in caplog.text
    assert "canary" not in caplog.text and "internals" not in caplog.text


# Numeric keys as a client may write them: parsed as floats, each would come back otherwise (1.1, 100.0, 0, ...)
AS_SENT = ["1.10", "1E+2", "-0", "-0.0", "12345678901234567890.5", "2.50e-3"]


def test_numeric_keys_come_back_as_sent_in_answers_and_error_slots(served):
    instances = ",".join(f'{{"text": "{GOOD}", "key": {k}}}' for k in AS_SENT) + ', {"text": " ", "key": 0.50}'
    bodies = [(f'{{"text": "{GOOD}", "key": 1.10}}'.encode(), JSON), (f'{{"instances": [{instances}]}}'.encode(), JSON),
              (b'{"text": "", "key": 3.0}', JSON)]  # fmt: skip
    handler, context = served
    replies = handler.handle(batch(context, bodies), context)
    assert replies[0].startswith(b'{"key":1.10,"positive_review_probability":')
    for key in AS_SENT:
        assert f'{{"key":{key},"positive_review_probability":'.encode() in replies[1], key
    assert b'{"key":0.50,"error":{"code":"empty_text"' in replies[1]
    assert replies[2].startswith(b'{"key":3.0,"error":{"code":"empty_text"')
    assert [p.get("key") for p in json.loads(replies[1])["predictions"]] == [*map(float, AS_SENT), 0.5]
