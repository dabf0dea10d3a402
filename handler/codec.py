"""Request decoding and response encoding for the sentiment service: pure functions, no torch or TorchServe.

Accepted on POST /predictions/sentiment:
  text/plain                    one review                          -> one prediction object
  application/json {"text": ..., "key": ...}                        -> one prediction object
  application/json {"instances": [{"text"|"reviews": ..., "key": ...} | "review", ...]}
                                                                    -> {"predictions": [...]} in the same order

Decisions for input that is not what a client should send (docs/api.md has the whole catalogue):
  - A request that is unusable as a whole gets one 4xx error body; inside `instances`, a bad instance gets an
    error object in its own slot and the other instances are still scored (the request answers 200).
  - A text/plain body is always review text, even when it looks like JSON; no Content-Type means text/plain;
    any other media type is 415.
  - Unknown fields are ignored (clients may attach their own metadata); "text" wins over "reviews".
  - An optional "audit" object is the device's own answer to an instance it also sends to phase 2 (edge.cascade):
    {"phase1_probability": p in [0, 1], "phase1_version": "..."}; checked (400 invalid_audit), never a model
    input, and captured beside the server's answer so that continued evaluation can judge the device model.
  - Keys are strings or finite numbers (not booleans), echoed unchanged: a number as the text it was sent as
    (`1.10` stays `1.10`, `1E+2` stays `1E+2`, `-0` stays `-0`; a float would give 1.1, 100.0 and 0).
    Several instances may carry the same key: they are answered in order, so the position identifies them.
    A refused instance whose key is valid gets that key beside its error, as a prediction does.
  - Control characters and NUL bytes are normalised away by the tokenizer; a review with nothing printable is
    400. Any script and emoji are valid text. Lone UTF-16 surrogates (possible through JSON "\\ud800"
    escapes) cannot be encoded and are refused with 400.
  - Reviews are truncated to the model's max_tokens; beyond Limits.max_chars characters they are refused (413),
    and so is a request with more than Limits.max_instances instances.
  - Every prediction says how much of the review the vocabulary covered (`unknown_token_fraction`), and flags
    `out_of_vocabulary` when the model knew too few of its words for the probability to be a verdict.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Protocol

from handler.errors import ServingError
from handler.settings import Limits
from model.logit import label, sigmoid  # the label rule's one home; re-exported: callers import it from here


class Number(float):
    """A JSON number, with the text it was sent as (only integers other than `-0` are parsed as int: their text is
    their repr): compared and checked as the float it is, written back as its text (`encode`), so that a key
    comes back as the client wrote it."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> Number:
        number = super().__new__(cls, text)
        number.text = text
        return number


def _integer(text: str) -> int | Number:
    return Number(text) if text == "-0" else int(text)


def loads(text: str | bytes) -> object:
    """json.loads, numbers that are not plain integers kept with their text (Number)."""
    return json.loads(text, parse_float=Number, parse_int=_integer)


def key_json(key: object) -> str:
    """A key's JSON text: a number as it was sent."""
    return key.text if isinstance(key, Number) else json.dumps(key, ensure_ascii=False)


KEYED_LISTS = ("predictions", "instances")  # the lists whose items carry keys, in answers and in requests


def encode(body: dict, **options) -> str:
    """json.dumps(body, **options), with every key that is a Number (the body's own "key", and each "key" of the
    items of its "predictions" or "instances") written as the text it was sent as. Such keys are swapped for
    marks no text can hold (a NUL and a random nonce), which are then replaced in the JSON text."""
    holders = [body, *(i for name in KEYED_LISTS for i in (body.get(name) or ()) if isinstance(i, dict))]
    numbered = [h for h in holders if isinstance(h.get("key"), Number)]
    if not numbered:
        return json.dumps(body, **options)
    nonce = os.urandom(8).hex()
    swapped = {id(h): {**h, "key": f"\0{nonce}{n}"} for n, h in enumerate(numbered)}
    copy = {
        name: [swapped.get(id(i), i) for i in value] if name in KEYED_LISTS and isinstance(value, list) else value
        for name, value in swapped.get(id(body), body).items()
    }
    text = json.dumps(copy, **options)
    for n, holder in enumerate(numbered):
        text = text.replace(json.dumps(f"\0{nonce}{n}", **options), holder["key"].text, 1)
    return text


Key = str | int | float | None
TEXT_FIELDS = ("text", "reviews")  # "reviews" is the book's field name
# Above this share of unknown tokens the logit is mostly the model's bias: the answer says so rather than
# passing the prior off as a verdict ("meh", emoji, a review in another language).
OUT_OF_VOCABULARY = 0.5
# The prediction object's fields, in its order (docs/api.md); a keyed request's answer has "key" first
PREDICTION_FIELDS = (
    "positive_review_probability",
    "positive_review_logits",
    "label",
    "unknown_token_fraction",
    "out_of_vocabulary",
    "model_version",
)


@dataclass(frozen=True)
class Audit:
    """The device's answer to an audited instance: what phase 1 said, kept beside the server's in the capture."""

    phase1_probability: float
    phase1_version: str


@dataclass(frozen=True)
class Instance:
    text: str
    key: Key = None
    audit: Audit | None = None


@dataclass
class Request:
    """One decoded HTTP request: its instances (or per-instance errors) and whether it used `instances`."""

    items: list[Instance | ServingError] = field(default_factory=list)
    uses_instances: bool = False  # answered as {"predictions": [...]}, one slot per instance

    def texts(self) -> list[str]:
        return [item.text for item in self.items if isinstance(item, Instance)]


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_text(text: object, limits: Limits) -> str:
    """The review text, or the ServingError a client gets for it (the batch job uses it for its error rows)."""
    if text is None:
        raise ServingError("missing_text", 'a review needs a "text" field holding a string')
    if not isinstance(text, str):
        raise ServingError("invalid_text", f'"text" must be a string, got {type(text).__name__}')
    if len(text) > limits.max_chars:
        raise ServingError("text_too_long", f"a review may hold at most {limits.max_chars} characters")
    if not _encodable(text):
        raise ServingError("invalid_text", "the review text holds lone UTF-16 surrogates")
    if not _visible(text):
        raise ServingError("empty_text", "the review text is empty or holds only whitespace and control characters")
    return text


def _visible(text: str) -> bool:
    """True when the text holds a printable character that is not a space: a review shows something.

    A loop rather than any() over a generator, whose set-up costs more than the usual review's one step: it is
    run on every review, and most answer at their first character."""
    for ch in text:  # noqa: SIM110 - see above
        if ch.isprintable() and not ch.isspace():
            return True
    return False


def check_key(key: object, limits: Limits) -> Key:
    """The key, or the ServingError a client gets for it (the batch job uses it for its key column too)."""
    if key is None:
        return None
    if isinstance(key, bool) or not isinstance(key, (str, int, float)):
        raise ServingError("invalid_key", f'"key" must be a string or a number, got {type(key).__name__}')
    if isinstance(key, float) and not math.isfinite(key):
        raise ServingError("invalid_key", '"key" must be a finite number')
    if isinstance(key, str) and len(key) > limits.max_key_chars:
        raise ServingError("invalid_key", f'"key" may hold at most {limits.max_key_chars} characters')
    if isinstance(key, str) and not _encodable(key):
        raise ServingError("invalid_key", '"key" holds lone UTF-16 surrogates')
    return key


def check_audit(audit: object, limits: Limits) -> Audit | None:
    """The device's answer an audited instance carries, or the ServingError a client gets for a malformed one.

    The version is an identifier, capped as a key is (`max_key_chars`)."""
    if audit is None:
        return None
    if not isinstance(audit, dict):
        raise ServingError("invalid_audit", f'"audit" must be an object, got {_json_type(audit)}')
    p = audit.get("phase1_probability")
    # compared, not converted: an integer of hundreds of digits is valid JSON and overflows a float; NaN fails too
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ServingError("invalid_audit", '"audit.phase1_probability" must be a number within [0, 1]')
    version = audit.get("phase1_version")
    if not isinstance(version, str) or not 0 < len(version) <= limits.max_key_chars or not _encodable(version):
        raise ServingError(
            "invalid_audit", f'"audit.phase1_version" must be a string of 1 to {limits.max_key_chars} characters'
        )
    return Audit(float(p), version)


def _encodable(text: str) -> bool:
    """False for strings that hold lone surrogates: no tokenizer or UTF-8 encoder accepts them."""
    if text.isascii():  # no surrogates, answered without encoding a copy: most reviews
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_record(record: dict, limits: Limits, key_field: str = "key", text_fields=TEXT_FIELDS) -> Instance:
    """One review from a JSON object: its key checked first, then its text (the first of `text_fields` present),
    then its audit.

    The online request's object; the batch job, which keeps keys its own way, calls record_text."""
    text, audit = _checked(record, limits, key_field, text_fields)
    return Instance(text, record.get(key_field), audit)


def record_text(record: dict, limits: Limits, key_field: str = "key", text_fields=TEXT_FIELDS) -> str:
    """The review text of a JSON object once its key, its text and its audit passed their checks, or the
    ServingError.

    check_record's checks, for the batch job's JSONL lines (with the job's key and text field names): it needs
    the text alone, once per line, where an Instance would be built only to be taken apart."""
    return _checked(record, limits, key_field, text_fields)[0]


def _checked(record: dict, limits: Limits, key_field: str, text_fields) -> tuple[str, Audit | None]:
    check_key(record.get(key_field), limits)
    text = check_text(_first_field(record, text_fields), limits)
    return text, check_audit(record.get("audit"), limits)


def _first_field(record: dict, fields) -> object:
    """The value of the first of `fields` that the object holds ("text" wins over "reviews"), else None."""
    for name in fields:
        if name in record:
            return record[name]
    return None


def decode_utf8(body: bytes) -> str:
    """The body as text, or invalid_utf8 (a request body; a batch JSONL line)."""
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise ServingError("invalid_utf8", "the request body is not valid UTF-8") from None


def parse_json(text: str) -> object:
    """The JSON value of a body (or of a batch JSONL line), or invalid_json."""
    try:
        return loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, or an integer beyond Python's 4300 digits
        raise ServingError("invalid_json", "the request body is not valid JSON") from None


def check_object(payload: object) -> dict:
    """A JSON body that is an object (a request, or a batch JSONL line), or invalid_request."""
    if not isinstance(payload, dict):
        raise ServingError(
            "invalid_request",
            f"the body must be a JSON object, got {_json_type(payload)}; "
            'send {"text": ...} or {"instances": [...]}',
        )
    return payload


def _instance(obj: object, limits: Limits) -> Instance:
    """One review from a JSON value: a string, or an object with "text"/"reviews" and an optional "key".

    A refusal carries the object's key when the key itself passed its check (the key is checked first)."""
    if isinstance(obj, str):
        return Instance(check_text(obj, limits))
    if not isinstance(obj, dict):
        raise ServingError("invalid_instance", f"an instance must be an object or a string, got {_json_type(obj)}")
    try:
        return check_record(obj, limits)
    except ServingError as err:
        if err.code != "invalid_key":
            err.key = obj.get("key")
        raise


def _json_type(obj: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(obj), "number")


def _from_json(payload: object, limits: Limits) -> Request:
    payload = check_object(payload)
    if "instances" not in payload:
        return Request([_instance(payload, limits)])
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise ServingError("invalid_instances", '"instances" must be a non-empty array')
    if len(instances) > limits.max_instances:
        raise ServingError("too_many_instances", f"a request may hold at most {limits.max_instances} instances")
    items: list[Instance | ServingError] = []
    for obj in instances:
        try:
            items.append(_instance(obj, limits))
        except ServingError as err:
            items.append(err)
    return Request(items, uses_instances=True)


def decode(body: object, content_type: str | None, limits: Limits) -> Request:
    """Decode one request body; raises a ServingError when the request as a whole is unusable.

    `body` is bytes from the wire, or what TorchServe has already decoded (a str for text/*, any JSON value for
    application/json) when its decode_input_request is left on; config.properties turns it off.
    """
    media = _media_type(content_type)
    if media not in ("application/json", "text/plain", ""):  # form bodies too: TorchServe splits them into fields
        raise ServingError("unsupported_media_type", "send Content-Type application/json or text/plain")
    if not isinstance(body, (str, bytes, bytearray)) and body is not None:  # JSON already parsed by TorchServe
        return _from_json(body, limits)
    if body is None or len(body) == 0:
        raise ServingError("empty_body", "the request body is empty")
    if isinstance(body, (bytes, bytearray)):
        body = decode_utf8(body)
    if media == "application/json":
        return _from_json(parse_json(body), limits)
    return Request([Instance(check_text(body, limits))])


class Scored(Protocol):
    """What the model says of one review (model.infer.Score; the codec itself never imports torch)."""

    logit: float
    unknown_fraction: float


def prediction_values(score: Scored, version: str) -> tuple:
    """The prediction object's values, in PREDICTION_FIELDS' order: what `prediction` answers, without a dict
    per review for the batch job, which turns them into columns."""
    logit, unknown = score.logit, score.unknown_fraction
    return (
        sigmoid(logit),
        logit,
        label(logit),
        round(unknown, 4),
        unknown > OUT_OF_VOCABULARY,
        version,
    )


def prediction(score: Scored, key: Key, version: str) -> dict:
    """The prediction object; the key is echoed unchanged and is never a model input."""
    out = {} if key is None else {"key": key}
    out.update(zip(PREDICTION_FIELDS, prediction_values(score, version), strict=True))
    return out


def respond(request: Request, scores: list[Scored], version: str) -> tuple[int, dict]:
    """(HTTP status, body) for one request, consuming its share of the batch's scores in order."""
    it = iter(scores)
    answers = []
    for item in request.items:
        if isinstance(item, ServingError):
            answers.append(item.body())
        else:
            answers.append(prediction(next(it), item.key, version))
    if request.uses_instances:
        return 200, {"predictions": answers}
    return 200, answers[0]


def error_response(err: ServingError) -> tuple[int, dict]:
    return err.status, err.body()


def dumps(body: dict) -> bytes:
    """Compact UTF-8 JSON; returning bytes also stops TorchServe from pretty-printing the answer."""
    return encode(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
