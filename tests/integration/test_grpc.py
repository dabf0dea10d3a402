"""TorchServe's own gRPC APIs (config.properties' grpc_inference_port and grpc_management_port) on a real
TorchServe, called by a grpcio client built from the definitions the installed TorchServe ships
(tests/integration/torchserve_grpc.py): the same answers as REST, keys through a JSON body, the tokens required,
and the handler's errors in the answer."""

from __future__ import annotations

import json

import grpc
import pytest

from tests.catalogue import GOOD
from tests.conftest import BOOK_REVIEWS
from tests.integration.torchserve_grpc import TorchServeGrpc

INFERENCE = "inference.proto"
MANAGEMENT = "management.proto"
PACKAGE = "org.pytorch.serve.grpc"


@pytest.fixture(scope="module")
def grpc_client(server):
    host = "127.0.0.1"
    props = server.properties
    client = TorchServeGrpc(f"{host}:{props['grpc_inference_port']}", f"{host}:{props['grpc_management_port']}")
    yield client
    client.close()


def predictions(grpc_client, server, inputs: dict[str, bytes], token: str | None = "inference"):
    request = grpc_client.message(f"{PACKAGE}.inference.PredictionsRequest")(model_name="sentiment", input=inputs)
    key = server.client.keys()[token] if token else None
    return grpc_client.call(INFERENCE, "Predictions", request, key)


def test_a_review_gets_the_rest_answer(grpc_client, server):
    for review in BOOK_REVIEWS.values():
        answer = predictions(grpc_client, server, {"data": review.encode()})
        assert json.loads(answer.prediction) == server.client.predict(review)


def test_keys_pass_through_a_json_body_named_as_such(grpc_client, server):
    instances = [{"text": GOOD, "key": "g-1"}, {"text": BOOK_REVIEWS["negative"], "key": 2}]
    body = json.dumps({"instances": instances}).encode()
    answer = predictions(grpc_client, server, {"data": body, "content-type": b"application/json"})
    assert json.loads(answer.prediction)["predictions"] == server.client.predict_many(instances)


def test_a_bad_request_gets_the_handlers_error_in_an_ok_call(grpc_client, server):
    """TorchServe's gRPC answer has no status of the handler's: the call succeeds and `prediction` holds the same
    error body REST sends with its 4xx (docs/api.md: gRPC)."""
    answer = predictions(grpc_client, server, {"data": b"  \n "})
    assert json.loads(answer.prediction)["error"]["code"] == "empty_text"
    answer = predictions(grpc_client, server, {"data": b'{"text": 5}', "content-type": b"application/json"})
    assert json.loads(answer.prediction)["error"]["code"] == "invalid_text"


@pytest.mark.parametrize("token", [None, "management"])
def test_inference_needs_the_inference_token(grpc_client, server, token):
    with pytest.raises(grpc.RpcError) as caught:
        predictions(grpc_client, server, {"data": GOOD.encode()}, token=token)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_ping(grpc_client, server):
    empty = grpc_client.message("google.protobuf.Empty")()
    health = grpc_client.call(INFERENCE, "Ping", empty, server.client.keys()["inference"])
    assert json.loads(health.health)["status"] == "Healthy"


def test_management_describes_with_the_management_token_only(grpc_client, server):
    request = grpc_client.message(f"{PACKAGE}.management.DescribeModelRequest")(model_name="sentiment")
    described = grpc_client.call(MANAGEMENT, "DescribeModel", request, server.client.keys()["management"])
    assert json.loads(described.msg)[0]["modelName"] == "sentiment"
    with pytest.raises(grpc.RpcError) as caught:
        grpc_client.call(MANAGEMENT, "DescribeModel", request, server.client.keys()["inference"])
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
