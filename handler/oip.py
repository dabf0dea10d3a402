"""The Open Inference Protocol (KServe v2) dialect of the service: pure functions, no torch or TorchServe.

    POST /v2/models/{model}/infer   (TorchServe routes it to the handler whatever ts_open_inference_protocol says)
    {"id": "...", "inputs": [{"name": "text", "datatype": "BYTES", "shape": [N], "data": ["review", ...]},
                             {"name": "key", "datatype": "BYTES" | "INT64", "shape": [N], "data": [...]}],
     "outputs": [{"name": "label"}, ...]}                      (inputs' "key" and the request's "outputs": optional)
 -> {"id": "...", "model_name": ..., "model_version": ..., "outputs": [{"name", "datatype", "shape": [N], "data"}]}

The outputs are the native prediction object's fields as tensors (handler.codec.PREDICTION_FIELDS, model_version
aside: the answer carries it once), in that order, then "key" when the request had one; "outputs" in the
request selects and orders them. Values are the native API's, unrounded: the same review gets the same numbers on
both routes.

Decisions:
  - A tensor answer has no slot for one instance's error, so one bad review among N refuses the whole request
    with that review's code and status (docs/api.md), its message naming every bad instance's position and key
    (the first few); nothing is scored. Clients that want the others scored regardless use the native
    `instances` request, where each slot has its own answer.
  - Errors are the spec's shape, {"error": "<code>: <message>"}: the registry's code (handler.errors) leads the
    message, so a client can still branch on it.
  - The body is always JSON, whatever its Content-Type (tritonclient sends none); binary tensor data (the
    Inference-Header-Content-Length extension) is refused: every answer is JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from handler.codec import (
    PREDICTION_FIELDS,
    Instance,
    Request,
    Scored,
    check_key,
    check_text,
    decode_utf8,
    parse_json,
    prediction_values,
)
from handler.codec import (
    decode as decode_native,
)
from handler.errors import ServingError
from handler.settings import Limits

TEXT = "text"
KEY = "key"
KEY_DATATYPES = ("BYTES", "INT64")
INT64 = (-(2**63), 2**63 - 1)
# The answer's tensors, in the native prediction object's order; model_version is the answer's own field
OUTPUTS: dict[str, str] = {
    "positive_review_probability": "FP32",
    "positive_review_logits": "FP32",
    "label": "BYTES",
    "unknown_token_fraction": "FP32",
    "out_of_vocabulary": "BOOL",
}
VALUES = {name: i for i, name in enumerate(PREDICTION_FIELDS)}  # where each output's value sits
BINARY_HEADER = "inference-header-content-length"
NAMED_BAD_INSTANCES = 5  # an error message names at most this many bad instances


@dataclass
class InferRequest(Request):
    """A decoded inference request: the codec's Request (so scoring and capture treat it as any other) plus what
    its answer needs."""

    id: str | None = None
    outputs: tuple[str, ...] = ()  # the tensors to answer, in order
    key_datatype: str | None = None


def is_oip_route(headers: dict) -> bool:
    """True for a request that came by TorchServe's KServe routes (/v2/models/{m}/infer): the frontend marks those
    with an "explain" header only, where /predictions also gets "url_path" (InferenceRequestHandler)."""
    names = {name.lower() for name in headers}
    return "explain" in names and "url_path" not in names


def metadata(model_name: str) -> dict:
    """The model metadata answer (GET /v2/models/{model}), which the fleet's edge serves: TorchServe does not."""
    return {
        "name": model_name,
        "platform": "pytorch_torchscript",
        "inputs": [
            {"name": TEXT, "datatype": "BYTES", "shape": [-1]},
            {"name": KEY, "datatype": "BYTES", "shape": [-1]},  # optional; INT64 keys are accepted too
        ],
        "outputs": [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in OUTPUTS.items()],
    }


def _refuse(message: str) -> ServingError:
    return ServingError("invalid_tensors", message)


def _tensor(inputs: list, name: str) -> dict | None:
    found = [t for t in inputs if isinstance(t, dict) and t.get("name") == name]
    if len(found) > 1:
        raise _refuse(f'the input "{name}" is given {len(found)} times')
    return found[0] if found else None


def _data(tensor: dict, datatypes: tuple[str, ...], limits: Limits) -> list:
    name = tensor["name"]
    if tensor.get("datatype") not in datatypes:
        raise _refuse(f'the input "{name}" must have datatype {" or ".join(datatypes)}, got {tensor.get("datatype")!r}')
    shape, data = tensor.get("shape"), tensor.get("data")
    if not isinstance(data, list):
        raise _refuse(f'the input "{name}" needs "data": a flat array of its values')
    if not (isinstance(shape, list) and len(shape) == 1 and shape[0] == len(data)):
        raise _refuse(f'the input "{name}" must have shape [N] with N its number of values ({len(data)}), got {shape}')
    if not data:
        raise _refuse(f'the input "{name}" is empty: send at least one review')
    if len(data) > limits.max_instances:
        raise ServingError("too_many_instances", f"a request may hold at most {limits.max_instances} instances")
    return data


def _keys(inputs: list, n: int, limits: Limits) -> tuple[list, str | None]:
    tensor = _tensor(inputs, KEY)
    if tensor is None:
        return [None] * n, None
    keys = _data(tensor, KEY_DATATYPES, limits)
    if len(keys) != n:
        raise _refuse(f'the input "key" must have the shape of "text" ([{n}]), got [{len(keys)}]')
    if tensor["datatype"] == "INT64":
        bad = [i for i, k in enumerate(keys) if not _int64(k)]
        if bad:
            raise ServingError("invalid_key", f'INT64 "key" values must be integers; not at positions {bad[:5]}')
    elif any(not isinstance(k, str) for k in keys):
        raise ServingError("invalid_key", 'BYTES "key" values must be strings')
    return [check_key(k, limits) for k in keys], tensor["datatype"]


def _int64(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and INT64[0] <= value <= INT64[1]


def _outputs(payload: dict, keyed: bool) -> tuple[str, ...]:
    available = (*OUTPUTS, KEY) if keyed else tuple(OUTPUTS)
    requested = payload.get("outputs")
    if requested is None:
        return available
    if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
        raise _refuse('"outputs" must be an array of objects with a "name"')
    names = tuple(o.get("name") for o in requested)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise _refuse(f"unknown output(s) {unknown}; this model answers {list(available)}")
    return names


def decode(body: object, headers: dict, limits: Limits) -> InferRequest | Request:
    """Decode an inference request body; raises the ServingError that refuses it as a whole.

    TorchServe marks its KServe v1 route (POST /v1/models/{model}:predict) as it marks v2's, so a body of v1's
    shape, {"instances": [...]} and no "inputs", is the native `instances` request it also is, answered
    {"predictions": [...]} as v1 says (its errors in the same {"error": ...} shape as v2's)."""
    if any(name.lower() == BINARY_HEADER for name in headers):
        raise _refuse("binary tensor data is not supported: send JSON tensors (tritonclient: binary_data=False)")
    if isinstance(body, (bytes, bytearray, str)) or body is None:
        if not body:
            raise ServingError("empty_body", "the request body is empty")
        payload = parse_json(decode_utf8(body) if isinstance(body, (bytes, bytearray)) else body)
    else:  # JSON already parsed by TorchServe (decode_input_request left on)
        payload = body
    if not isinstance(payload, dict):
        raise ServingError("invalid_request", 'the body must be a JSON object with "inputs"')
    if "inputs" not in payload and "instances" in payload:
        return decode_native(payload, "application/json", limits)
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _refuse('"id" must be a string')
    inputs = payload.get("inputs")
    if not isinstance(inputs, list):
        raise _refuse('"inputs" must be an array of tensors, one named "text"')
    text = _tensor(inputs, TEXT)
    if text is None:
        raise _refuse('"inputs" holds no tensor named "text" (BYTES, shape [N]: the reviews)')
    texts = _data(text, ("BYTES",), limits)
    keys, key_datatype = _keys(inputs, len(texts), limits)
    outputs = _outputs(payload, key_datatype is not None)
    items, bad = [], []
    for position, (review, key) in enumerate(zip(texts, keys, strict=True)):
        try:
            items.append(Instance(check_text(review, limits), key))
        except ServingError as err:
            bad.append((position, key, err))
    if bad:
        raise _bad_instances(bad, len(texts))
    return InferRequest(items, uses_instances=True, id=request_id, outputs=outputs, key_datatype=key_datatype)


def _bad_instances(bad: list[tuple[int, object, ServingError]], n: int) -> ServingError:
    """The first bad instance's code and status for the request, the message naming each (up to a few)."""
    named = "; ".join(
        f"instance {position}" + ("" if key is None else f" (key {key!r})") + f": {err.code}: {err.message}"
        for position, key, err in bad[:NAMED_BAD_INSTANCES]
    )
    more = f"; and {len(bad) - NAMED_BAD_INSTANCES} more" if len(bad) > NAMED_BAD_INSTANCES else ""
    return ServingError(bad[0][2].code, f"{len(bad)} of {n} instances cannot be scored, so none was: {named}{more}")


def respond(request: InferRequest, scores: list[Scored], model_name: str, version: str) -> tuple[int, dict]:
    """(200, the inference response) for a decoded request and its scores, in order."""
    rows = [prediction_values(score, version) for score in scores]
    outputs = []
    for name in request.outputs:
        if name == KEY:
            outputs.append(_out(KEY, request.key_datatype, [item.key for item in request.items]))
        else:
            outputs.append(_out(name, OUTPUTS[name], [row[VALUES[name]] for row in rows]))
    answer = {"model_name": model_name, "model_version": version, "outputs": outputs}
    if request.id is not None:
        answer = {"id": request.id, **answer}
    return 200, answer


def _out(name: str, datatype: str, data: list) -> dict:
    return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}


def error_response(err: ServingError) -> tuple[int, dict]:
    """The spec's error shape: {"error": "<code>: <message>"}, with the registry's status."""
    return err.status, {"error": f"{err.code}: {err.message}"}
