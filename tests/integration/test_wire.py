"""The buffered worker protocol (handler/wire.py) in a real TorchServe: in use when on, and every answer the
same as with TorchServe's own protocol code (SENTIMENT_WORKER_PROTOCOL=torchserve), request by request."""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from handler import wire
from serving.run.server import stop
from tests.catalogue import CASES, GOOD, JSON, TEXT
from tests.integration.conftest import launch
from tests.oip_catalogue import OIP_CASES, OipCase
from tests.oip_catalogue import body as oip_body
from tests.oip_catalogue import key as oip_key
from tests.oip_catalogue import text as oip_text

TEXTS = [
    GOOD,
    "Un film magnifique, très émouvant. 素晴らしい映画 🎬",
    "awful " * 2000,  # a whole review's length and more: truncated to max_tokens by the model
    "<br />The plot<br /><br />was thin.",
]


def _launch(tmp_path_factory, mar_path, protocol: str):
    workdir = tmp_path_factory.mktemp(f"torchserve-wire-{protocol}")
    before = os.environ.get(wire.SWITCH)
    os.environ[wire.SWITCH] = protocol  # the frontend passes its environment on to the workers it starts
    try:
        return launch(workdir, mar_path)
    finally:
        if before is None:
            os.environ.pop(wire.SWITCH)
        else:
            os.environ[wire.SWITCH] = before


@pytest.fixture(scope="module")
def servers(mar_path, tmp_path_factory):
    started = {}
    try:
        for protocol in (wire.BUFFERED, wire.TORCHSERVE):
            started[protocol] = _launch(tmp_path_factory, mar_path, protocol)
        yield started
    finally:
        for srv in started.values():
            stop(srv.workdir)


def answer(server, body: bytes, content_type: str | None) -> tuple:
    response = server.client.predict_raw(body, content_type or "", retries=0)
    try:
        payload = response.json()
    except ValueError:
        payload = response.content
    return response.status_code, response.headers.get("content-type"), payload


def alike(a, b) -> bool:
    """Equal, floats within float32 rounding: which requests share a batch depends on timing, and a forward pass
    over another batch (other padding, other matrix shapes) can move a logit in its last float32 bits."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-9)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(alike(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(alike(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def model_log(server) -> str:
    time.sleep(0.5)  # the frontend writes the workers' output to model_log.log asynchronously
    return (server.logs / "model_log.log").read_text(errors="replace")


def test_on_by_default_and_in_use_in_every_worker(servers):
    installed = wire.INSTALLED % wire.TORCHSERVE_VERSION
    assert model_log(servers[wire.BUFFERED]).count(installed) == 2  # both workers
    assert installed not in model_log(servers[wire.TORCHSERVE])
    assert "worker protocol: TorchServe's own" in model_log(servers[wire.TORCHSERVE])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_catalogue_request_gets_the_same_answer(servers, case):
    """Every bad input and its neighbours: the same status, content type and body with either protocol."""
    on, off = (answer(servers[p], case.body, case.content_type) for p in (wire.BUFFERED, wire.TORCHSERVE))
    assert on == off
    assert on[0] == case.status


def test_concurrent_batches_get_the_same_answers(servers):
    """64 requests at once, so that the workers read batches of many requests: unicode, long and short texts,
    text/plain and JSON, instances, each answer the same as with TorchServe's own reader and writer."""
    bodies = []
    for i in range(64):
        text = TEXTS[i % len(TEXTS)]
        if i % 3 == 0:
            bodies.append((text.encode("utf-8"), TEXT))
        elif i % 3 == 1:
            bodies.append((json.dumps({"text": text, "key": f"k{i}"}).encode(), JSON))
        else:
            instances = [{"text": t, "key": n} for n, t in enumerate(TEXTS)] + [{"text": ""}]
            bodies.append((json.dumps({"instances": instances}).encode(), JSON))

    def all_answers(server) -> list:
        server.client.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
        with ThreadPoolExecutor(max_workers=64) as pool:
            return list(pool.map(lambda b: answer(server, *b), bodies))

    on, off = (all_answers(servers[p]) for p in (wire.BUFFERED, wire.TORCHSERVE))
    assert alike(on, off)
    assert {status for status, _, _ in on} == {200}


def test_a_multipart_form_gets_the_same_answer(servers):
    """A form's parts reach the worker as several parameters of one request."""

    def form(server):
        c = server.client
        response = requests.post(
            f"{c.inference_url}/predictions/sentiment",
            files={"data": ("review.txt", GOOD.encode(), TEXT), "other": ("x.bin", b"\x00\xff", "image/png")},
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
        )
        return response.status_code, response.content

    assert form(servers[wire.BUFFERED]) == form(servers[wire.TORCHSERVE])


def _post(server, path: str, body: bytes) -> tuple:
    response = requests.post(
        f"{server.client.inference_url}{path}",
        data=body,
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": JSON},
        timeout=30,
    )
    return response.status_code, response.headers.get("content-type"), response.content


OIP_GOOD = oip_body(oip_text(TEXTS), oip_key([f"k{i}" for i in range(len(TEXTS))]), id="wire-1")


@pytest.mark.parametrize("case", [*OIP_CASES, OipCase("good", OIP_GOOD, 200, "")], ids=lambda c: c.name)
def test_every_open_inference_request_gets_the_same_answer(servers, case):
    """The KServe v2 route reaches the worker with other headers than /predictions: the same answers too."""
    on, off = (_post(servers[p], "/v2/models/sentiment/infer", case.body) for p in (wire.BUFFERED, wire.TORCHSERVE))
    assert on == off
    assert on[0] == case.status


def test_a_kserve_v1_request_gets_the_same_answer(servers):
    body = json.dumps({"instances": TEXTS}).encode()
    on, off = (_post(servers[p], "/v1/models/sentiment:predict", body) for p in (wire.BUFFERED, wire.TORCHSERVE))
    assert on == off and on[0] == 200
