"""The worker's side of TorchServe 0.12.0's frontend protocol, read and written in one buffered pass.

TorchServe's worker reads each batch from the frontend's Unix socket field by field: two `recv` calls and a
`bytearray` per length-prefixed field, so a batch of 32 short requests costs hundreds of system calls, about a
third of the worker's CPU at c=64 (docs/performance.md, "Where the time goes"). This module reads whatever the
socket holds in large reads and parses the batch from that buffer, and writes the answers as one joined buffer.
It produces the very messages and bytes TorchServe's own `retrieve_msg` and `create_predict_response` do
(tests/unit/test_wire_properties.py proves it against them), so the handler and TorchServe's `Service` see no
difference.

TorchServe 0.12 is archived upstream and its protocol frozen; `install` puts this module in place only when the
running TorchServe is exactly TORCHSERVE_VERSION and its functions are where 0.12.0 has them, and keeps
TorchServe's own code otherwise, for any answer shape this module does not write itself, and when
`SENTIMENT_WORKER_PROTOCOL=torchserve` is set in the server's environment.

The frame formats (big-endian 32-bit signed integers; a length of -1 ends a list):

    load:      b"L" | name | model path | int batch size | handler | int gpu | envelope | bool limitMaxImagePixels
    inference: b"I" | request* | -1
    request:   id | (header name | header value)* -1 | (parameter name | content type | value)* -1
    answer:    int code | message | (id | content type | int status | phrase | int n (key | value)^n | body)* | -1

where every name, value and body is an int length followed by that many bytes.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)

TORCHSERVE_VERSION = "0.12.0"  # the one release whose protocol this module speaks
SWITCH = "SENTIMENT_WORKER_PROTOCOL"  # environment variable: "torchserve" keeps TorchServe's own protocol code
BUFFERED, TORCHSERVE = "buffered", "torchserve"
INSTALLED = "worker protocol: buffered reader and writer installed (TorchServe %s)"  # the proof it is in use
READ_SIZE = 1 << 16  # bytes asked of the socket per read: a batch of 32 whole reviews is about 50 KB
LOAD, INFERENCE = b"L", b"I"
END = -1

_INT = struct.Struct("!i")
_INT_AT = _INT.unpack_from
_PACK = _INT.pack
_END = _PACK(END)
_NO_CONTEXT = struct.Struct("!iiii")  # content type length 0, status, phrase length 0, no headers


class Incomplete(Exception):
    """The buffer ends before the message does: `needed` bytes from its start are the least that can finish it."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


def _int(buf: bytearray, pos: int) -> tuple[int, int]:
    end = pos + 4
    if end > len(buf):
        raise Incomplete(end)
    return _INT_AT(buf, pos)[0], end


def _field(buf: bytearray, pos: int) -> tuple[bytearray, int]:
    """A length-prefixed field as the bytearray TorchServe hands on; a length <= 0 reads as empty, as there."""
    length, pos = _int(buf, pos)
    if length <= 0:
        return bytearray(), pos
    end = pos + length
    if end > len(buf):
        raise Incomplete(end)
    return buf[pos:end], end


def _value(raw: bytearray, content_type: str, decode: bool):
    """A parameter's value as TorchServe's worker passes it on: JSON parsed and text decoded only when the
    frontend's decode_input_request is on (this service ships it off: the handler's codec reads raw bytes)."""
    if decode and content_type == "application/json":
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # bad UTF-8, bad JSON, too deep a nesting; never logs the payload
            logger.warning("a JSON parameter did not parse: passed on as bytes")
            return raw
    if decode and content_type.startswith("text"):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            logger.warning("a text parameter is not UTF-8: passed on as bytes")
            return raw
    return raw


def parse_inference(buf: bytearray, pos: int, decode: bool) -> tuple[list[dict], int]:
    """The requests of an inference message whose command byte ends at `pos`, and where the message ends."""
    batch = []
    while True:
        length, _ = _int(buf, pos)
        if length == END:
            return batch, pos + 4
        request_id, pos = _field(buf, pos)
        headers = []
        while True:
            length, _ = _int(buf, pos)
            if length == END:
                pos += 4
                break
            name, pos = _field(buf, pos)
            value, pos = _field(buf, pos)
            headers.append({"name": name, "value": value})
        parameters = []
        while True:
            length, _ = _int(buf, pos)
            if length == END:
                pos += 4
                break
            name, pos = _field(buf, pos)
            content_type, pos = _field(buf, pos)
            raw, pos = _field(buf, pos)
            content_type = content_type.decode("utf-8")
            parameters.append(
                {"name": name.decode("utf-8"), "contentType": content_type, "value": _value(raw, content_type, decode)}
            )
        batch.append({"requestId": request_id, "headers": headers, "parameters": parameters})


def parse_load(buf: bytearray, pos: int) -> tuple[dict, int]:
    """The fields of a load message whose command byte ends at `pos`, and where the message ends."""
    msg = {}
    msg["modelName"], pos = _field(buf, pos)
    msg["modelPath"], pos = _field(buf, pos)
    msg["batchSize"], pos = _int(buf, pos)
    msg["handler"], pos = _field(buf, pos)
    gpu, pos = _int(buf, pos)
    if gpu >= 0:
        msg["gpu"] = gpu
    msg["envelope"], pos = _field(buf, pos)
    if pos + 1 > len(buf):
        raise Incomplete(pos + 1)
    msg["limitMaxImagePixels"] = buf[pos] != 0
    return msg, pos + 1


def parse(buf: bytearray) -> tuple[bytearray, object, int]:
    """(command, message, bytes used) for the message at the start of `buf`; Incomplete if it is not all there."""
    if not buf:
        raise Incomplete(1)
    cmd = buf[0:1]
    if cmd == LOAD:
        msg, end = parse_load(buf, 1)
    elif cmd == INFERENCE:
        decode = os.environ.get("TS_DECODE_INPUT_REQUEST") in (None, "true")
        msg, end = parse_inference(buf, 1, decode)
    else:
        raise ValueError(f"Invalid command: {cmd}")  # the worker dies on it, as with TorchServe's reader
    return cmd, msg, end


class Reader:
    """Messages from one frontend connection, read in large chunks; bytes past a message wait for the next."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.buf = bytearray()

    def message(self) -> tuple[bytearray, object]:
        while True:
            try:
                cmd, msg, end = parse(self.buf)
            except Incomplete as more:
                self._fill(more.needed)
                continue
            del self.buf[:end]
            return cmd, msg

    def _fill(self, needed: int) -> None:
        """Read until the buffer holds `needed` bytes: at least READ_SIZE at a time, all of a large body at once."""
        while len(self.buf) < needed:
            chunk = self.conn.recv(max(READ_SIZE, needed - len(self.buf)))
            if not chunk:  # the frontend closed the socket: it stops or replaces this worker
                logger.info("Frontend disconnected.")
                sys.exit(0)
            self.buf += chunk


class Decoder:
    """`retrieve_msg(conn)` with one Reader per connection (a worker serves one connection at a time)."""

    def __init__(self) -> None:
        self.reader: Reader | None = None

    def __call__(self, conn) -> tuple[bytearray, object]:
        if self.reader is None or self.reader.conn is not conn:
            self.reader = Reader(conn)
        return self.reader.message()


def _text(value: str) -> list[bytes]:
    data = value.encode("utf-8")
    return [_PACK(len(data)), data]


def _writes_itself(ret, context, ts_stream_next: bool) -> bool:
    """The answers this module writes; the rest (tensors, objects TorchServe turns into JSON, streaming, other
    ranks of a distributed worker) go to TorchServe's own function."""
    if ts_stream_next or str(os.getenv("LOCAL_RANK", 0)) != "0":
        return False
    if context is not None and context.stopping_criteria:
        return False
    return ret is None or all(isinstance(v, (bytes, bytearray, str)) for v in ret)


def encode_predict_response(
    ret, req_id_map, message, code, context=None, ts_stream_next=False, *, fallback: Callable | None = None
):
    """The answer message for a batch, byte for byte what TorchServe 0.12.0's create_predict_response writes."""
    if not _writes_itself(ret, context, ts_stream_next):
        return fallback(ret, req_id_map, message, code, context, ts_stream_next)
    parts = [_PACK(code), *_text(message)]
    for idx in req_id_map:
        parts += _text(req_id_map.get(idx))
        if context is None:
            parts.append(_NO_CONTEXT.pack(0, code, 0, 0))
        else:
            headers = context.get_response_headers(idx)
            if headers.get("ts_stream_next") == "true":  # the last answer of a stream ends it
                context.set_response_header(idx, "ts_stream_next", "false")
            content_type = context.get_response_content_type(idx)
            # TorchServe writes the length of the str, not of its UTF-8, for the content type and the phrase: the
            # same bytes here (ASCII in every answer this handler gives, where the two agree).
            if content_type:
                parts += (_PACK(len(content_type)), content_type.encode("utf-8"))
            else:
                parts.append(_PACK(0))
            status, phrase = context.get_response_status(idx)
            phrase = phrase if phrase is not None else ""
            parts += (_PACK(status if status is not None else 200), _PACK(len(phrase)), phrase.encode("utf-8"))
            headers = context.get_response_headers(idx)
            parts.append(_PACK(len(headers)))
            for key, value in headers.items():
                parts += _text(key)
                parts += _text(value)
        if ret is None:
            parts += (_PACK(5), b"error")
        else:
            body = ret[idx]
            if isinstance(body, str):
                body = body.encode("utf-8")
            parts += (_PACK(len(body)), body)
    parts.append(_END)
    return b"".join(parts)


def enabled(environ: dict | None = None) -> bool:
    """The switch: on unless SENTIMENT_WORKER_PROTOCOL says `torchserve`; any other value is a mistake, refused."""
    value = (os.environ if environ is None else environ).get(SWITCH, BUFFERED).strip().lower()
    if value not in (BUFFERED, TORCHSERVE):
        raise ValueError(f"{SWITCH} must be {BUFFERED!r} or {TORCHSERVE!r}, not {value!r}")
    return value == BUFFERED


def install() -> bool:
    """Put the buffered reader and writer in place of TorchServe's in this worker process, when the switch is on,
    the running TorchServe is exactly TORCHSERVE_VERSION and this process is its worker; True once in place.

    The worker's loop (ts/model_service_worker.py, run as __main__) and `ts.service.Service.predict` look these
    functions up by module name on every batch, so replacing the names takes effect from the next batch."""
    if not enabled():
        logger.info("worker protocol: TorchServe's own (%s=%s)", SWITCH, TORCHSERVE)
        return False
    try:
        import ts
        import ts.service
        from ts.protocol import otf_message_handler
    except ImportError:
        return False
    worker = sys.modules.get("__main__")
    if ts.__version__ != TORCHSERVE_VERSION:
        logger.warning(
            "worker protocol: TorchServe's own (written for %s, running %s)", TORCHSERVE_VERSION, ts.__version__
        )
        return False
    if (
        getattr(worker, "retrieve_msg", None) is not otf_message_handler.retrieve_msg
        or getattr(ts.service, "create_predict_response", None) is not otf_message_handler.create_predict_response
    ):
        # not a TorchServe worker process (a test, the batch job), or already installed
        return isinstance(getattr(worker, "retrieve_msg", None), Decoder)
    own_writer = otf_message_handler.create_predict_response

    def writer(ret, req_id_map, message, code, context=None, ts_stream_next=False):
        return encode_predict_response(ret, req_id_map, message, code, context, ts_stream_next, fallback=own_writer)

    worker.retrieve_msg = Decoder()
    ts.service.create_predict_response = writer
    logger.info(INSTALLED, ts.__version__)
    return True
