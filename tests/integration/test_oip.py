"""The Open Inference Protocol (KServe v2) on a real TorchServe, called by tritonclient and by plain requests:
the same reviews get the native API's answers, keys pass through, bad requests get the spec's error shape, and
every answered instance is captured."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from evaluation import captures
from handler import oip
from handler.capture import utc
from serving.run import server as torchserve
from tests.catalogue import LIMITS
from tests.conftest import BOOK_REVIEWS, ROOT
from tests.integration.conftest import PHASE2, launch
from tests.oip_catalogue import OIP_CASES, body, key, text

REVIEWS = [*BOOK_REVIEWS.values(), "Ein großartiger Film! 🎬", "meh"]
MODELS = ["sentiment", PHASE2]


@pytest.fixture(scope="module")
def server(mar_path, bigram_mar_path, tmp_path_factory):
    """Both served models, token authorization on, as shipped."""
    srv = launch(tmp_path_factory.mktemp("torchserve-oip"), mar_path, models={PHASE2: bigram_mar_path})
    yield srv
    srv.stop()


def infer_url(server, model: str) -> str:
    return f"{server.properties['inference_address']}/v2/models/{model}/infer"


def token(server) -> dict:
    return {"Authorization": f"Bearer {server.client.keys()['inference']}"}


def native(server, model: str, reviews: list[str], keys: list | None = None) -> list[dict]:
    instances = [
        {"text": r} if keys is None else {"text": r, "key": k} for r, k in zip(reviews, keys or reviews, strict=True)
    ]
    return server.client.predict_many(instances, model=model)


def triton_infer(url: str, model: str, reviews: list[str], headers: dict, keys: list[int] | None = None):
    """What a tritonclient user writes: BYTES in, the outputs named, JSON (not binary) both ways."""
    client = triton.InferenceServerClient(url=url)
    try:
        review = triton.InferInput("text", [len(reviews)], "BYTES")
        review.set_data_from_numpy(np.array(reviews, dtype=object), binary_data=False)
        inputs = [review]
        if keys is not None:
            key_input = triton.InferInput("key", [len(keys)], "INT64")
            key_input.set_data_from_numpy(np.array(keys, dtype=np.int64), binary_data=False)
            inputs.append(key_input)
        names = ["positive_review_probability", "positive_review_logits", "label"] + (["key"] if keys else [])
        outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in names]
        return client.infer(model, inputs, outputs=outputs, request_id="triton-1", headers=headers)
    finally:
        client.close()


@pytest.mark.parametrize("model", MODELS)
def test_tritonclient_scores_as_the_native_api_does(server, model):
    address = server.properties["inference_address"].removeprefix("http://")
    result = triton_infer(address, model, REVIEWS, token(server), keys=list(range(100, 100 + len(REVIEWS))))
    expected = native(server, model, REVIEWS)
    assert result.get_response()["id"] == "triton-1" and result.get_response()["model_name"] == model
    probability = result.as_numpy("positive_review_probability")
    assert probability.dtype == np.float32
    assert probability.tolist() == [np.float32(p["positive_review_probability"]) for p in expected]
    assert result.as_numpy("positive_review_logits").tolist() == [
        np.float32(p["positive_review_logits"]) for p in expected
    ]
    assert result.as_numpy("label").tolist() == [p["label"] for p in expected]
    assert result.as_numpy("key").tolist() == list(range(100, 100 + len(REVIEWS)))


@pytest.mark.parametrize("model", MODELS)
def test_requests_gets_the_native_values_unrounded(server, model):
    keys = [f"k{i}" for i in range(len(REVIEWS))]
    r = requests.post(
        infer_url(server, model),
        json=json.loads(body(text(REVIEWS), key(keys), id="r-7")),
        headers=token(server),
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    answer = r.json()
    assert (answer["id"], answer["model_name"]) == ("r-7", model)
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert [(o["name"], o["datatype"], o["shape"]) for o in answer["outputs"]] == [
        *((name, datatype, [len(REVIEWS)]) for name, datatype in oip.OUTPUTS.items()),
        ("key", "BYTES", [len(REVIEWS)]),
    ]
    for i, prediction in enumerate(native(server, model, REVIEWS, keys)):
        assert prediction["model_version"] == answer["model_version"]
        assert {name: outputs[name]["data"][i] for name in (*oip.OUTPUTS, "key")} == {
            name: prediction[name] for name in (*oip.OUTPUTS, "key")
        }


@pytest.mark.parametrize("case", OIP_CASES, ids=lambda c: c.name)
def test_each_bad_request_gets_the_specs_error(server, case):
    r = requests.post(infer_url(server, "sentiment"), data=case.body, headers=token(server), timeout=30)
    assert r.status_code == case.status
    answer = r.json()
    assert list(answer) == ["error"] and answer["error"].startswith(f"{case.code}: ")


def test_one_bad_review_among_several_is_named_to_a_tritonclient_user(server):
    address = server.properties["inference_address"].removeprefix("http://")
    with pytest.raises(InferenceServerException) as caught:
        triton_infer(address, "sentiment", [REVIEWS[0], "   ", REVIEWS[1]], token(server), keys=[1, 2, 3])
    assert "empty_text" in str(caught.value) and "instance 1 (key 2)" in str(caught.value)


def test_without_the_token_torchserve_refuses(server):
    r = requests.post(infer_url(server, "sentiment"), data=body(text(REVIEWS)), timeout=30)
    assert r.status_code == 400 and "Token Authorization failed" in r.text  # TorchServe's own answer


def captured(server, wanted, least: int) -> list[dict]:
    """The capture records `wanted` selects, once there are `least` of them (the writer flushes on its own)."""
    deadline = time.monotonic() + 30
    while True:
        records = [rec for rec in captures.read(server.workdir / "captures").records if wanted(rec)]
        if len(records) >= least or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def test_every_instance_is_captured_and_so_is_a_refusal(server):
    keys = [f"oip-capture-{i}" for i in range(3)]
    r = requests.post(
        infer_url(server, "sentiment"), data=body(text(REVIEWS[:3]), key(keys)), headers=token(server), timeout=30
    )
    assert r.status_code == 200
    records = captured(server, lambda rec: rec["key"] in keys, len(keys))
    assert sorted(rec["key"] for rec in records) == keys
    assert all(rec["error"] is None and rec["positive_review_logits"] is not None for rec in records)

    sent = utc(time.time())  # records of the catalogue's refusals, answered before, are older
    too_long = body(text([REVIEWS[0], "a" * (LIMITS.max_chars + 1)]))
    r = requests.post(infer_url(server, "sentiment"), data=too_long, headers=token(server), timeout=30)
    assert r.status_code == 413
    [record] = captured(server, lambda rec: rec["error"] == "text_too_long" and rec["time"] >= sent, 1)
    assert record["positive_review_logits"] is None  # one record for the request it refused, nothing scored


def test_kserve_v1_clients_get_the_native_instances_answer(server):
    """TorchServe's /v1/models/{model}:predict reaches the handler marked as v2's route does: v1's body is the
    native `instances` request, and so is its answer."""
    url = f"{server.properties['inference_address']}/v1/models/sentiment:predict"
    r = requests.post(url, json={"instances": REVIEWS}, headers=token(server), timeout=30)
    assert r.status_code == 200 and r.json()["predictions"] == native(server, "sentiment", REVIEWS)
    bad = requests.post(url, json={"instances": []}, headers=token(server), timeout=30)
    assert bad.status_code == 400 and bad.json() == {
        "error": 'invalid_instances: "instances" must be a non-empty array'
    }


NOT_SERVED = ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/sentiment", "/v2/models/sentiment/ready")


def test_torchserve_as_configured_serves_no_other_v2_route(server):
    """Metadata and health over v2: the fleet edge's (serving/fleet/oip_edge.py); here /ping is the health check."""
    for path in NOT_SERVED:
        r = requests.get(server.properties["inference_address"] + path, headers=token(server), timeout=30)
        assert r.status_code == 404, path


def test_torchserves_own_v2_readiness_is_ready_without_a_model(mar_path, tmp_path):
    """Why config.properties leaves ts_open_inference_protocol off: TorchServe's /v2/health/ready says ready
    with no model loaded at all, so it tells a client or a probe nothing /ping does not tell better."""
    srv = torchserve.launch(tmp_path, mar_path, {"ts_open_inference_protocol": "true", "load_models": ""})
    try:
        assert srv.client.list_models()["models"] == []
        base, headers = srv.properties["inference_address"], token(srv)
        assert requests.get(f"{base}/v2/health/ready", headers=headers, timeout=30).json() == {"ready": True}
        for path in NOT_SERVED[3:]:  # metadata and model readiness: not served even then
            assert requests.get(base + path, headers=headers, timeout=30).status_code == 404, path
    finally:
        srv.stop()


def docs_section() -> str:
    text = (ROOT / "docs" / "api.md").read_text()
    return text[text.index("## Open Inference Protocol") : text.index("## gRPC")]


def test_the_docs_curl_gets_the_answer_the_docs_show(server):
    command, answer = re.search(r"```bash\n(curl .*?)```\s*```json\n(.*?)```", docs_section(), re.S).groups()
    assert "/v2/models/sentiment/infer" in command
    sent = re.search(r"--data-binary '([^']+)'", command, re.S).group(1)
    headers = {**token(server), "Content-Type": "application/json"}
    got = requests.post(infer_url(server, "sentiment"), data=sent.encode(), headers=headers, timeout=30).json()
    shown = json.loads(answer)
    assert {k: v for k, v in got.items() if k != "outputs"} == {k: v for k, v in shown.items() if k != "outputs"}
    for mine, theirs in zip(got["outputs"], shown["outputs"], strict=True):
        assert {k: v for k, v in mine.items() if k != "data"} == {k: v for k, v in theirs.items() if k != "data"}
        if mine["datatype"] == "FP32":
            assert mine["data"] == pytest.approx(theirs["data"], abs=1e-6)
        else:
            assert mine["data"] == theirs["data"]
