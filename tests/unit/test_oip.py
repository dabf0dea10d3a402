"""The Open Inference Protocol codec (handler.oip) in-process: its decisions, and the handler's route switch."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from handler import oip
from handler.errors import ServingError
from tests.catalogue import GOOD, LIMITS
from tests.oip_catalogue import OIP_CASES, body, key, text
from tests.unit.fake_context import batch

OIP_ROUTE = {"explain": "False"}  # what TorchServe's /v2/models/{m}/infer adds to a request's headers


@pytest.mark.parametrize("case", OIP_CASES, ids=lambda c: c.name)
def test_each_bad_request_has_its_code_and_status(case):
    with pytest.raises(ServingError) as caught:
        oip.decode(case.body, OIP_ROUTE, LIMITS)
    status, answer = oip.error_response(caught.value)
    assert (status, caught.value.code) == (case.status, case.code)
    assert list(answer) == ["error"] and answer["error"].startswith(f"{case.code}: ")


def test_one_bad_instance_names_its_position_and_key():
    with pytest.raises(ServingError) as caught:
        oip.decode(body(text([GOOD, "", GOOD, "\t"]), key(["a", "b", "c", "d"])), OIP_ROUTE, LIMITS)
    message = caught.value.message
    assert "2 of 4 instances" in message and "instance 1 (key 'b')" in message and "instance 3 (key 'd')" in message


def test_a_request_decodes_to_instances_with_keys_outputs_and_id():
    request = oip.decode(
        body(text([GOOD, "Dull."]), key([7, 8], "INT64"), id="r-1", outputs=[{"name": "key"}, {"name": "label"}]),
        OIP_ROUTE,
        LIMITS,
    )
    assert request.texts() == [GOOD, "Dull."] and [i.key for i in request.items] == [7, 8]
    assert (request.id, request.outputs, request.key_datatype) == ("r-1", ("key", "label"), "INT64")


def test_the_answer_holds_the_native_values_as_tensors():
    request = oip.decode(body(text([GOOD, "Dull."]), key(["a", "b"]), id="r-2"), OIP_ROUTE, LIMITS)
    scores = [SimpleNamespace(logit=1.5, unknown_fraction=0.0), SimpleNamespace(logit=-2.0, unknown_fraction=0.75)]
    status, answer = oip.respond(request, scores, "sentiment", "1.0")
    assert status == 200 and answer["id"] == "r-2" and answer["model_name"] == "sentiment"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert list(outputs) == [*oip.OUTPUTS, "key"]
    assert outputs["label"] == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["positive", "negative"]}
    assert outputs["positive_review_logits"]["data"] == [1.5, -2.0]
    assert outputs["out_of_vocabulary"]["data"] == [False, True]
    assert outputs["key"]["data"] == ["a", "b"]
    json.dumps(answer, allow_nan=False)


def test_binary_tensor_data_is_refused():
    with pytest.raises(ServingError, match="binary_data=False"):
        oip.decode(body(text([GOOD])), {**OIP_ROUTE, "Inference-Header-Content-Length": "40"}, LIMITS)


def test_only_the_kserve_routes_speak_oip():
    assert oip.is_oip_route({"explain": "False"})
    assert not oip.is_oip_route({"explain": "False", "url_path": ""})  # /predictions/...
    assert not oip.is_oip_route({})  # gRPC


def test_the_handler_answers_each_route_in_its_dialect(served):
    handler, context = served
    native = json.dumps({"text": GOOD}).encode()
    data = batch(context, [(body(text([GOOD]), id="x"), None), (native, "application/json")])
    context.request_processor[0].get_request_properties().update(OIP_ROUTE)
    context.request_processor[1].get_request_properties().update({"explain": "False", "url_path": ""})
    oip_reply, native_reply = (json.loads(r) for r in handler.handle(data, context))
    assert oip_reply["id"] == "x" and context.get_response_status(0)[0] == 200
    [probability] = next(o["data"] for o in oip_reply["outputs"] if o["name"] == "positive_review_probability")
    assert probability == native_reply["positive_review_probability"]
    data = batch(context, [(b"{}", None)])
    context.request_processor[0].get_request_properties().update(OIP_ROUTE)
    [reply] = handler.handle(data, context)
    assert context.get_response_status(0)[0] == 400 and json.loads(reply)["error"].startswith("invalid_tensors: ")
