"""The bad-input catalogue: every request a client should not send, with the answer it gets.

One table drives the in-process handler test (tests/unit/test_catalogue.py) and the same requests against a
real TorchServe (tests/integration/test_bad_input.py). docs/api.md documents the same decisions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from handler import settings
from serving.run.server import max_request_size

JSON = "application/json"
TEXT = "text/plain"
GOOD = "The film is fast moving and has several great action scenes."
LIMITS = settings.read().limits  # the shipped model-config.yaml's, as the served archive carries them
MAX_REQUEST_SIZE = max_request_size()


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str | None
    status: int  # HTTP status of the request
    code: str | None = None  # the error code of the whole request, or None when it answers 200
    slots: tuple[str | None, ...] = ()  # with `instances`: each slot's error code, or None for a prediction
    server_only: bool = False  # decided by TorchServe before the handler sees it


def _json(obj) -> bytes:
    return json.dumps(obj).encode("utf-8")


def audit(probability, version: str = "1.0-int8") -> dict:
    """The device's answer as edge.cascade attaches it to an audited instance."""
    return {"phase1_probability": probability, "phase1_version": version}


CASES: list[Case] = [
    # the request as a whole is unusable: one 4xx error body
    Case("empty body (json)", b"", JSON, 400, "empty_body"),
    Case("empty body (text)", b"", TEXT, 400, "empty_body"),
    Case("whitespace-only text", b" \n\t  \r\n", TEXT, 400, "empty_text"),
    Case("whitespace-only json text", _json({"text": "  \n "}), JSON, 400, "empty_text"),
    Case("empty text", _json({"text": ""}), JSON, 400, "empty_text"),
    Case("text is a number", _json({"text": 42}), JSON, 400, "invalid_text"),
    Case("text is null", _json({"text": None}), JSON, 400, "missing_text"),
    Case("empty object", b"{}", JSON, 400, "missing_text"),
    Case("top-level array", _json([GOOD]), JSON, 400, "invalid_request"),
    Case("top-level string", _json(GOOD), JSON, 400, "invalid_request"),
    Case("instances empty", _json({"instances": []}), JSON, 400, "invalid_instances"),
    Case("instances not an array", _json({"instances": "x"}), JSON, 400, "invalid_instances"),
    Case("malformed json", b'{"text": "great film"', JSON, 400, "invalid_json"),
    Case("deeply nested json", b"[" * 50_000 + b"]" * 50_000, JSON, 400, "invalid_json"),
    Case("integer beyond 4300 digits", b'{"text": "a", "key": ' + b"9" * 5000 + b"}", JSON, 400, "invalid_json"),
    Case("raw NUL inside a json string", b'{"text": "great\x00film"}', JSON, 400, "invalid_json"),
    Case(
        "json under an unsupported media type", _json({"text": GOOD}), "application/xml", 415, "unsupported_media_type"
    ),
    Case("form-encoded body", b"text=great+film", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    Case("not utf-8 (text)", b"great film \xff\xfe\xc3\x28", TEXT, 400, "invalid_utf8"),
    Case("not utf-8 (json)", b'{"text": "great \xff film"}', JSON, 400, "invalid_utf8"),
    Case("only control characters", b"\x00\x01\x02\x07\x1b", TEXT, 400, "empty_text"),
    Case("lone surrogate in text", b'{"text": "great \\ud800 film"}', JSON, 400, "invalid_text"),
    Case("lone surrogate in key", b'{"text": "great film", "key": "\\udc00"}', JSON, 400, "invalid_key"),
    Case("key is an array", _json({"text": GOOD, "key": [1]}), JSON, 400, "invalid_key"),
    Case("key is an object", _json({"text": GOOD, "key": {"id": 1}}), JSON, 400, "invalid_key"),
    Case("key is a boolean", _json({"text": GOOD, "key": True}), JSON, 400, "invalid_key"),
    Case("key is NaN", b'{"text": "great film", "key": NaN}', JSON, 400, "invalid_key"),
    Case("key too long", _json({"text": GOOD, "key": "k" * (LIMITS.max_key_chars + 1)}), JSON, 400, "invalid_key"),
    Case("audit is not an object", _json({"text": GOOD, "audit": 0.9}), JSON, 400, "invalid_audit"),
    Case("keyed and empty: the error carries the key", _json({"text": " ", "key": "r-1"}), JSON, 400, "empty_text"),
    Case("keyed and too long", _json({"text": "a" * (LIMITS.max_chars + 1), "key": 7}), JSON, 413, "text_too_long"),
    Case("audit probability above 1", _json({"text": GOOD, "audit": audit(1.5)}), JSON, 400, "invalid_audit"),
    Case(
        "audit probability NaN",
        b'{"text": "great film", "audit": {"phase1_probability": NaN, "phase1_version": "1.0-int8"}}',
        JSON,
        400,
        "invalid_audit",
    ),
    Case(
        "audit probability an integer beyond a float",
        b'{"text": "great film", "audit": {"phase1_probability": 1' + b"0" * 400 + b', "phase1_version": "v"}}',
        JSON,
        400,
        "invalid_audit",
    ),
    Case("audit probability a string", _json({"text": GOOD, "audit": audit("0.9")}), JSON, 400, "invalid_audit"),
    Case(
        "audit without a version",
        _json({"text": GOOD, "audit": {"phase1_probability": 0.9}}),
        JSON,
        400,
        "invalid_audit",
    ),
    Case(
        "audit version too long",
        _json({"text": GOOD, "audit": audit(0.9, "v" * (LIMITS.max_key_chars + 1))}),
        JSON,
        400,
        "invalid_audit",
    ),
    # oversize
    Case("1 MB review (text)", b"great " * 174_763, TEXT, 413, "text_too_long"),
    Case("1 MB review (json)", _json({"text": "great " * 174_763}), JSON, 413, "text_too_long"),
    Case(
        "too many instances",
        _json({"instances": [GOOD] * (LIMITS.max_instances + 1)}),
        JSON,
        413,
        "too_many_instances",
    ),
    Case("body beyond max_request_size", b"x" * (MAX_REQUEST_SIZE + 1), TEXT, 413, None, server_only=True),
    # valid, if unusual: predicted
    Case("review at the character cap", b"great " * (LIMITS.max_chars // 6) + b"film", TEXT, 200),
    Case(
        "instances at the cap",
        _json({"instances": [GOOD] * LIMITS.max_instances}),
        JSON,
        200,
        None,
        (None,) * LIMITS.max_instances,
    ),
    Case("unknown fields are ignored", _json({"text": GOOD, "lang": "en", "meta": {"a": [1]}}), JSON, 200),
    Case("json-looking text/plain is review text", _json({"instances": 42}), TEXT, 200),
    Case("no content type is text", GOOD.encode(), None, 200),
    Case("NUL and control characters inside text", b"great\x00film \x01\x07 really\x1b", TEXT, 200),
    Case("escaped NUL inside json", _json({"text": "great\u0000film"}), JSON, 200),
    Case("emoji", "😀🎬 loved it 👍🏽 ❤️".encode(), TEXT, 200),
    Case("emoji only", "🎬🍿".encode(), TEXT, 200),
    Case("non-Latin scripts", _json({"text": "素晴らしい映画 фильм отличный فيلم رائع फ़िल्म शानदार"}), JSON, 200),
    Case("numeric key", _json({"text": GOOD, "key": 12.5}), JSON, 200),
    Case("an audited instance", _json({"text": GOOD, "key": "a1", "audit": audit(0.0)}), JSON, 200),
    Case("audit null is no audit", _json({"text": GOOD, "audit": None}), JSON, 200),
    # instances: a bad instance is answered in its own slot, the others are predicted
    Case(
        "bad instances answered in their slots",
        _json({"instances": [GOOD, 42, None, ["x"], {"text": ""}, {"key": 1}, {"text": GOOD, "key": [1]}]}),
        JSON,
        200,
        None,
        (None, "invalid_instance", "invalid_instance", "invalid_instance", "empty_text", "missing_text", "invalid_key"),
    ),
    Case(
        "refused instances carry their valid keys",
        _json(
            {
                "instances": [
                    {"text": 1, "key": "a"},
                    {"key": 2.5},
                    {"text": "", "key": [1]},
                    {"text": GOOD, "key": "b"},
                    {"text": "\t", "key": "c", "audit": audit(2)},
                    {"text": "", "key": None},
                ]
            }
        ),
        JSON,
        200,
        None,
        ("invalid_text", "missing_text", "invalid_key", None, "empty_text", "empty_text"),
    ),  # fmt: skip
    Case(
        "every instance bad",
        _json({"instances": [{"text": 1}, True]}),
        JSON,
        200,
        None,
        ("invalid_text", "invalid_instance"),
    ),
    Case(
        "oversize instance",
        _json({"instances": [GOOD, "great " * (LIMITS.max_chars // 5)]}),
        JSON,
        200,
        None,
        (None, "text_too_long"),
    ),
    Case(
        "a malformed audit answered in its slot",
        _json({"instances": [{"text": GOOD, "audit": audit(1)}, {"text": GOOD, "key": "x", "audit": audit(-0.1)}]}),
        JSON,
        200,
        None,
        (None, "invalid_audit"),
    ),
    Case(
        "duplicate keys are answered in order",
        _json({"instances": [{"text": GOOD, "key": "k"}, {"text": "Awful, boring film.", "key": "k"}]}),
        JSON,
        200,
        None,
        (None, None),
    ),
]


def sent(case: Case) -> object:
    """The request's JSON value, or None when it is not JSON."""
    try:
        return json.loads(case.body) if case.content_type == JSON else None
    except (ValueError, RecursionError):
        return None


def error_fields(instance: object, code: str) -> set[str]:
    """An error object's fields: its instance's key beside the error, when that key was valid (any code but
    invalid_key), as a prediction carries it."""
    keyed = isinstance(instance, dict) and instance.get("key") is not None and code != "invalid_key"
    return {"key", "error"} if keyed else {"error"}


def check(case: Case, status: int, body: dict | None) -> None:
    """Assert that an answer is the one the catalogue promises for `case`."""
    assert status == case.status, (case.name, status, body)
    if case.server_only:
        return
    assert body is not None, case.name
    request = sent(case)
    if case.code is not None:
        assert set(body) == error_fields(request, case.code) and body["error"]["code"] == case.code, (case.name, body)
        assert body.get("key") == (request.get("key") if "key" in body else None), case.name
        assert body["error"]["message"], case.name
    elif case.slots:
        answers = body["predictions"]
        assert [a["error"]["code"] if "error" in a else None for a in answers] == list(case.slots), case.name
        for instance, answer in zip(request["instances"], answers, strict=True):
            assert "error" in answer or answer["label"] in ("positive", "negative")
            if "error" in answer:
                assert set(answer) == error_fields(instance, answer["error"]["code"]), (case.name, answer)
                assert answer.get("key") == (instance.get("key") if "key" in answer else None), case.name
    else:
        assert body["label"] in ("positive", "negative"), (case.name, body)
        assert 0.0 <= body["positive_review_probability"] <= 1.0
