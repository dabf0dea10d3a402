"""Open Inference Protocol requests a client should not send, with the answer each gets: one table for the
codec's unit test (tests/unit/test_oip.py) and the same bodies against a real TorchServe
(tests/integration/test_oip.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.catalogue import GOOD, LIMITS


@dataclass(frozen=True)
class OipCase:
    name: str
    body: bytes
    status: int
    code: str  # the registry's code, which leads the spec's {"error": "<code>: <message>"}


def text(data: list, shape: list | None = None, datatype: str = "BYTES") -> dict:
    return {"name": "text", "datatype": datatype, "shape": [len(data)] if shape is None else shape, "data": data}


def key(data: list, datatype: str = "BYTES") -> dict:
    return {"name": "key", "datatype": datatype, "shape": [len(data)], "data": data}


def body(*inputs: dict, **fields) -> bytes:
    return json.dumps({"inputs": list(inputs), **fields}).encode()


OIP_CASES: list[OipCase] = [
    OipCase("empty body", b"", 400, "empty_body"),
    OipCase("not json", b"great film", 400, "invalid_json"),
    OipCase("json array", b"[]", 400, "invalid_request"),
    OipCase("no inputs", b'{"id": "1"}', 400, "invalid_tensors"),
    OipCase("no text tensor", body(key(["a"])), 400, "invalid_tensors"),
    OipCase("text is FP32", body(text([1.0], datatype="FP32")), 400, "invalid_tensors"),
    OipCase("shape disagrees with data", body(text([GOOD, GOOD], shape=[3])), 400, "invalid_tensors"),
    OipCase("2-d shape", body(text([GOOD], shape=[1, 1])), 400, "invalid_tensors"),
    OipCase("empty tensor", body(text([])), 400, "invalid_tensors"),
    OipCase("key of another shape", body(text([GOOD, GOOD]), key(["a"])), 400, "invalid_tensors"),
    OipCase("key is FP32", body(text([GOOD]), key([1.5], "FP32")), 400, "invalid_tensors"),
    OipCase("INT64 key holds a string", body(text([GOOD]), key(["a"], "INT64")), 400, "invalid_key"),
    OipCase("unknown output", body(text([GOOD]), outputs=[{"name": "score"}]), 400, "invalid_tensors"),
    OipCase("key output without a key", body(text([GOOD]), outputs=[{"name": "key"}]), 400, "invalid_tensors"),
    OipCase("id is a number", body(text([GOOD]), id=7), 400, "invalid_tensors"),
    OipCase("one empty review among three", body(text([GOOD, " ", GOOD]), key(["a", "b", "c"])), 400, "empty_text"),
    OipCase("a review is a number", body(text([GOOD, 5])), 400, "invalid_text"),
    OipCase("a review too long", body(text([GOOD, "a" * (LIMITS.max_chars + 1)])), 413, "text_too_long"),
    OipCase("too many reviews", body(text([GOOD] * (LIMITS.max_instances + 1))), 413, "too_many_instances"),
]
