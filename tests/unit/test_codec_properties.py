"""Properties of the pure decode/encode functions: any input is a Request or a ServingError, never another
exception, and every answer encodes to valid UTF-8 JSON."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.codec import (
    TEXT_FIELDS,
    Instance,
    Request,
    check_record,
    check_text,
    decode,
    dumps,
    record_text,
    respond,
)
from handler.errors import ServingError
from handler.settings import Limits
from model.infer import Score

LIMITS = Limits(max_chars=2_000, max_instances=8, max_key_chars=16)  # small, so the caps are reached too
MEDIA = st.sampled_from(
    [None, "", "application/json", "application/json; charset=utf-8", "TEXT/PLAIN", "text/plain", "text/html", "x/y"]
)
KEYS = st.none() | st.text(max_size=20) | st.integers() | st.floats() | st.booleans() | st.lists(st.integers())
TEXTS = st.text(max_size=50) | st.integers() | st.none() | st.floats() | st.lists(st.text(max_size=5), max_size=2)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
INSTANCE = st.fixed_dictionaries({}, optional={"text": TEXTS, "reviews": TEXTS, "key": KEYS}) | TEXTS | JSON_VALUES
REQUESTS = (
    st.fixed_dictionaries({}, optional={"text": TEXTS, "key": KEYS, "extra": JSON_VALUES})
    | st.fixed_dictionaries({"instances": st.lists(INSTANCE, max_size=10) | JSON_VALUES})
    | JSON_VALUES
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(body, content_type) -> Request | ServingError:
    try:
        return decode(body, content_type, LIMITS)
    except ServingError as err:
        return err


def assert_answer_encodes(result: Request | ServingError, logit: float) -> None:
    """Encoding never fails, and what it writes is valid UTF-8 JSON with one answer per instance."""
    if isinstance(result, ServingError):
        assert 400 <= result.status < 500
        body = json.loads(dumps(result.body()).decode("utf-8"))
        assert body["error"]["code"]
        return
    assert isinstance(result, Request) and result.items
    scores = [Score(logit, tokens=3, unknown_tokens=1)] * len(result.texts())
    status, body = respond(result, scores, "1.0")
    decoded = json.loads(dumps(body).decode("utf-8"))
    assert status == 200
    answers = decoded["predictions"] if result.uses_instances else [decoded]
    assert len(answers) == len(result.items)
    for answer in answers:
        assert "error" in answer or 0.0 <= answer["positive_review_probability"] <= 1.0


LOGITS = st.floats(min_value=-1e6, max_value=1e6)


@FAST
@given(body=st.binary(max_size=3_000), content_type=MEDIA, logit=LOGITS)
def test_arbitrary_bytes(body, content_type, logit):
    assert_answer_encodes(outcome(body, content_type), logit)


@FAST
@given(payload=REQUESTS, content_type=MEDIA, logit=LOGITS, ascii_only=st.booleans())
def test_arbitrary_json(payload, content_type, logit, ascii_only):
    body = json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert_answer_encodes(outcome(body, content_type), logit)


@FAST
@given(payload=REQUESTS, content_type=MEDIA, logit=LOGITS)
def test_already_decoded_json(payload, content_type, logit):
    """TorchServe with its own input decoding on hands over any JSON value."""
    assert_answer_encodes(outcome(payload, content_type), logit)


@FAST
@given(text=st.text(max_size=3_000), content_type=MEDIA, logit=LOGITS)
def test_arbitrary_unicode(text, content_type, logit):
    """Any code points, lone surrogates included, as text/plain bytes, as a str, and inside JSON."""
    assert_answer_encodes(outcome(text.encode("utf-8", "surrogatepass"), content_type), logit)
    assert_answer_encodes(outcome(text, content_type), logit)
    assert_answer_encodes(outcome(json.dumps({"text": text, "key": text[:16]}).encode(), "application/json"), logit)
    assert_answer_encodes(
        outcome(json.dumps({"instances": [text, {"text": text}]}).encode(), "application/json"), logit
    )


# any code point, lone surrogates and the characters near the checks' edges (spaces, controls) drawn often
ANY_TEXT = st.text(st.characters(categories=["Cs", "Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Ll", "Lo", "So"]), max_size=12)


@FAST
@given(text=ANY_TEXT | st.text(max_size=12))
def test_a_text_is_refused_exactly_as_the_rules_say(text):
    """check_text's rules, each written out plainly: an unencodable text is invalid, one that shows no printable
    character other than spaces is empty."""
    try:
        text.encode("utf-8")
        encodable = True
    except UnicodeEncodeError:
        encodable = False
    shows = any(ch.isprintable() and not ch.isspace() for ch in text)
    expected = None if encodable and shows else "invalid_text" if not encodable else "empty_text"
    try:
        assert check_text(text, LIMITS) is text and expected is None
    except ServingError as err:
        assert err.code == expected


@FAST
@given(record=st.dictionaries(st.sampled_from(["id", "key", "text", "reviews", "body"]), KEYS | TEXTS, max_size=4))
def test_the_batch_jobs_record_text_is_check_records_text(record):
    """The batch job reads a JSONL line's text with record_text, online reads an object with check_record: the
    same checks (key, then the first text field present), the same answer, for the default and renamed fields."""
    for key_field, fields in (("key", TEXT_FIELDS), ("id", ("body",))):
        try:
            online = check_record(record, LIMITS, key_field, fields)
        except ServingError as err:
            online = err
        try:
            text = record_text(record, LIMITS, key_field, fields)
        except ServingError as err:
            assert isinstance(online, ServingError) and (err.code, err.message) == (online.code, online.message)
        else:
            assert online == Instance(text, record.get(key_field))
