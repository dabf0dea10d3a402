"""handler.wire against TorchServe 0.12.0's own protocol functions, on every message shape hypothesis can make.

Both readers read the same bytes from real socket pairs, sent in arbitrary pieces by a writer thread; both writers
write the answer for the same batch and contexts. Equal means equal values of equal types, and equal bytes.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ts.context import Context, RequestProcessor
from ts.protocol import otf_message_handler as torchserve

from handler import wire

INT32 = st.integers(-(2**31), 2**31 - 1)
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "text/plain", "text/html; charset=utf-8", "application/octet-stream", ""]),
    st.text(max_size=20),
)


def field(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


def large(size: int, pattern: bytes) -> bytes:
    return (pattern * (size // len(pattern) + 1))[:size]


# A parameter's value as a client could send it: any bytes, unicode text, JSON, broken JSON or UTF-8, large bodies.
VALUES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=10,
    ).map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8")),
    st.sampled_from([b"{", b"\xff\xfe", b'{"text": "\xe9"}', b"[1,", b"[" * 50_000 + b"]" * 50_000, b"9" * 5000]),
    st.builds(large, st.integers(0, 3_000_000), st.binary(min_size=1, max_size=64)),
)
HEADERS = st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=200)), max_size=12)
PARAMETERS = st.lists(st.tuples(st.text(max_size=20), CONTENT_TYPES, VALUES), max_size=4)
REQUESTS = st.lists(st.tuples(st.text(max_size=40), HEADERS, PARAMETERS), max_size=40)


def inference_message(requests) -> bytes:
    """An inference message as the frontend writes it."""
    out = [b"I"]
    for request_id, headers, parameters in requests:
        out.append(field(request_id.encode("utf-8")))
        for name, value in headers:
            out += (field(name), field(value))
        out.append(struct.pack("!i", -1))
        for name, content_type, value in parameters:
            out += (field(name.encode("utf-8")), field(content_type.encode("utf-8")), field(value))
        out.append(struct.pack("!i", -1))
    out.append(struct.pack("!i", -1))
    return b"".join(out)


LOADS = st.builds(
    lambda name, path, batch, handler, gpu, envelope, flag: b"".join(
        [b"L", field(name), field(path), struct.pack("!i", batch), field(handler), struct.pack("!i", gpu)]
        + [field(envelope), bytes([flag])]
    ),
    st.text(max_size=30).map(str.encode),
    st.text(max_size=80).map(str.encode),
    INT32,
    st.text(max_size=40).map(str.encode),
    INT32,
    st.binary(max_size=20),
    st.integers(0, 255),
)
MESSAGES = st.one_of(REQUESTS.map(inference_message), LOADS)


def read_all(reader, stream: bytes, count: int, cuts: list[int]) -> list:
    """`count` messages (or the exception that ended reading) read by `reader` from a real socket, the bytes sent
    in pieces cut at `cuts`, then the socket closed."""
    left, right = socket.socketpair()
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

    def send() -> None:
        try:
            for piece in pieces:
                left.sendall(piece)
        except OSError:  # the reader stopped early (an invalid command): nothing more to send
            pass
        finally:
            left.close()

    writer = threading.Thread(target=send)
    writer.start()
    out: list = []
    try:
        for _ in range(count):
            out.append(reader(right))
    except (SystemExit, ValueError) as err:
        out.append((type(err).__name__, str(err)))
    finally:
        right.close()
        writer.join()
    return out


def same(a, b) -> bool:
    """Equal values of equal types, all the way down (bytearray is not bytes here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def cut_points(draw_cuts: list[int], size: int) -> list[int]:
    return sorted({c % size for c in draw_cuts if size and c % size > 0})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    messages=st.lists(MESSAGES, min_size=1, max_size=3),
    cuts=st.lists(st.integers(1, 2**31), max_size=6),
    decode=st.sampled_from([None, "true", "false", "TRUE"]),
    tail=st.sampled_from([b"", b"I\x00\x00", b"X", b"\x00"]),
)
def test_the_reader_reads_what_torchserve_reads(messages, cuts, decode, tail):
    """Batches of 0-40 requests, headers, parameters, JSON and text bodies decoded or not, unicode, bodies up to
    3 MB, load messages, several messages back to back, then a cut-off message, an unknown command or nothing:
    the same messages, the same error, the same exit."""
    stream = b"".join(messages) + tail
    count = len(messages) + 1  # one read past the messages: the frontend's disconnect or the bad tail
    points = cut_points(cuts, len(stream))
    before = os.environ.get("TS_DECODE_INPUT_REQUEST")
    try:
        if decode is None:
            os.environ.pop("TS_DECODE_INPUT_REQUEST", None)
        else:
            os.environ["TS_DECODE_INPUT_REQUEST"] = decode
        theirs = read_all(torchserve.retrieve_msg, stream, count, points)
        ours = read_all(wire.Decoder(), stream, count, points)
    finally:
        if before is None:
            os.environ.pop("TS_DECODE_INPUT_REQUEST", None)
        else:
            os.environ["TS_DECODE_INPUT_REQUEST"] = before
    assert same(ours, theirs), (ours[-1], theirs[-1])


STATUSES = st.one_of(st.none(), st.integers(100, 599), INT32)
PHRASES = st.one_of(st.none(), st.just(""), st.text(max_size=30))
HEADER_MAPS = st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(bytearray),
    st.text(max_size=200),
    st.builds(large, st.integers(0, 2_000_000), st.binary(min_size=1, max_size=16)),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),  # TorchServe's own writer makes it JSON
)
ANSWERS = st.lists(
    st.tuples(
        st.text(max_size=36),
        STATUSES,
        PHRASES,
        st.one_of(st.none(), CONTENT_TYPES),
        HEADER_MAPS,
        st.sampled_from([None, "true", "false"]),
        BODIES,
    ),
    max_size=40,
)


def context_for(answers, stopping: bool) -> Context:
    context = Context("sentiment", "/model", {}, 32, None, "0.12.0")
    context.request_processor = [RequestProcessor({}) for _ in answers]
    for idx, (_, status, phrase, content_type, headers, stream_next, _) in enumerate(answers):
        if status is not None or phrase is not None:
            context.request_processor[idx].report_status(status, reason_phrase=phrase)
        if content_type is not None:
            context.set_response_content_type(idx, content_type)
        for key, value in headers.items():
            context.set_response_header(idx, key, value)
        if stream_next is not None:
            context.set_response_header(idx, "ts_stream_next", stream_next)
    if stopping:
        context.stopping_criteria = {idx: (lambda answer: len(answer) % 2 == 0) for idx in range(len(answers))}
    return context


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    answers=ANSWERS,
    message=st.text(max_size=40),
    code=INT32,
    shape=st.sampled_from(["answers", "no context", "error", "stream", "stopping"]),
)
def test_the_writer_writes_what_torchserve_writes(answers, message, code, shape):
    """Success, the error shapes Service.predict writes (no context, no answers), streaming answers, bytes, str,
    objects TorchServe turns into JSON, unicode headers, bodies up to 2 MB: the same bytes, the same headers left
    on the context."""
    req_id_map = {idx: answer[0] for idx, answer in enumerate(answers)}
    ret = None if shape in ("no context", "error") else [answer[-1] for answer in answers]
    contexts = [None, None] if shape == "no context" else [context_for(answers, shape == "stopping") for _ in "ab"]
    stream_next = shape == "stream"
    theirs = torchserve.create_predict_response(ret, req_id_map, message, code, contexts[0], stream_next)
    ours = wire.encode_predict_response(
        ret, req_id_map, message, code, contexts[1], stream_next, fallback=torchserve.create_predict_response
    )
    assert bytes(ours) == bytes(theirs)
    if contexts[0] is not None:
        assert [contexts[0].get_response_headers(i) for i in req_id_map] == [
            contexts[1].get_response_headers(i) for i in req_id_map
        ]


def test_the_writer_writes_the_common_answers_itself():
    """bytes and str answers never reach TorchServe's function: the fast path is the one taken."""
    answers = [("id-1", 200, "OK", "application/json", {}, None, b'{"a":1}'), ("id-2", 400, "bad", None, {}, None, "x")]

    def refuse(*_):
        raise AssertionError("fell back")

    context = context_for(answers, False)
    ours = wire.encode_predict_response(
        [a[-1] for a in answers], {0: "id-1", 1: "id-2"}, "ok", 200, context, False, fallback=refuse
    )
    assert ours.endswith(struct.pack("!i", -1))


@pytest.mark.parametrize("value", ["buffered", "torchserve", " Buffered "])
def test_the_switch_reads_its_two_values(value):
    assert wire.enabled({wire.SWITCH: value}) is (value.strip().lower() == "buffered")
    assert wire.enabled({}) is True


def test_the_switch_refuses_anything_else():
    with pytest.raises(ValueError, match=wire.SWITCH):
        wire.enabled({wire.SWITCH: "off"})


def test_outside_a_torchserve_worker_nothing_is_replaced():
    """Under pytest (or the batch job) __main__ is not TorchServe's worker: install leaves everything as it was."""
    import ts.service

    before = ts.service.create_predict_response
    assert wire.install() is False
    assert ts.service.create_predict_response is before
