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
