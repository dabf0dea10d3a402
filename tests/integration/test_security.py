"""Security against a real TorchServe: tokens (refused, expired and renewed), registration limited to the model
store, loopback-only ports, and no review text in any log file."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
import uuid

import psutil
import pytest
import requests

from serving.client.api import ServingAPIError, ServingClient
from serving.run.server import free_ports, server_pid, stop
from tests.catalogue import GOOD, JSON
from tests.integration.conftest import launch
from tests.integration.faulty_handler import RAISE_TRIGGER

TOKEN_SECONDS = 10  # token_expiration_min=1/6 for this module: tokens expire while the tests run


@pytest.fixture(scope="module")
def server(faulty_mar, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("torchserve-security")
    srv = launch(workdir, faulty_mar, overrides={"token_expiration_min": str(TOKEN_SECONDS / 60)})
    yield srv
    stop(workdir)


def refused(response: requests.Response) -> bool:
    return response.status_code == 400 and response.json()["type"] == "InvalidKeyException"


def test_requests_without_or_with_a_wrong_token_are_refused(server):
    c = server.client
    c.refresh_token("inference")  # fresh tokens: none expires during this test
    c.refresh_token("management")
    predict = f"{c.inference_url}/predictions/sentiment"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {c.keys()['management']}"}):
        assert refused(requests.post(predict, data=GOOD, headers={"Content-Type": "text/plain", **headers}, timeout=10))
        assert refused(requests.get(f"{c.inference_url}/ping", headers=headers, timeout=10))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {c.keys()['inference']}"}):
        assert refused(requests.get(f"{c.management_url}/models", headers=headers, timeout=10))
        assert refused(
            requests.get(f"{c.management_url}/token", params={"type": "inference"}, headers=headers, timeout=10)
        )
    ok = requests.post(predict, data=GOOD, headers={"Authorization": f"Bearer {c.keys()['inference']}"}, timeout=10)
    assert ok.status_code == 200  # the same request with the right token: the test above can fail


def test_client_renews_an_expired_token_itself(server):
    client = ServingClient(server.client.inference_url, server.client.management_url, server.client.key_file)
    assert client.predict(GOOD)["label"] == "positive"
    old = dict(client.keys())
    time.sleep(TOKEN_SECONDS + 1)
    stale = requests.post(
        f"{client.inference_url}/predictions/sentiment",
        data=GOOD,
        headers={"Authorization": f"Bearer {old['inference']}"},
        timeout=10,
    )
    assert refused(stale)  # expired
    assert client.predict(GOOD)["label"] == "positive"  # renewed with the API key and retried
    assert client.describe("sentiment")[0]["modelName"] == "sentiment"  # the management token too
    assert client.keys()["inference"] != old["inference"] and client.keys()["management"] != old["management"]
    assert client.keys()["API"] == old["API"]  # the API key itself never expires


def test_client_recovers_when_another_party_renews_the_token(server):
    ours, theirs = (
        ServingClient(server.client.inference_url, server.client.management_url, server.client.key_file)
        for _ in range(2)
    )
    assert ours.predict(GOOD)["label"] == "positive"
    cached = ours.keys()["inference"]
    theirs.refresh_token("inference")  # TorchServe keeps one inference token: the cached one is now void
    assert theirs.keys()["inference"] != cached
    assert ours.predict(GOOD)["label"] == "positive"
    assert ours.keys()["inference"] not in (cached, None)


class _Recorder(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        super().do_GET()

    def log_message(self, *_args):
        pass


def test_registration_only_from_the_model_store(server, tmp_path):
    """URLs are refused before anything is fetched: the loopback web server holding a real archive sees no
    request. An archive in the model store does register (so the refusals are not a broken API)."""
    shutil.copy2(server.model_store / "sentiment.mar", tmp_path / "x.mar")
    [port] = free_ports(1)
    web = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), lambda *a, **k: _Recorder(*a, directory=str(tmp_path), **k)
    )
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        assert requests.get(f"http://127.0.0.1:{port}/x.mar", timeout=5).status_code == 200  # it does serve it
        _Recorder.hits.clear()
        not_allowed, not_in_store = "does not match any allowed URL", "Model not found at"
        for url, why in (
            (f"http://127.0.0.1:{port}/x.mar", not_allowed),
            (f"https://127.0.0.1:{port}/x.mar", not_allowed),
            ("file:///etc/passwd", not_allowed),
            (f"file://{tmp_path}/x.mar", not_allowed),
            ("/etc/passwd", not_in_store),  # a path is looked up inside the model store
            (str(tmp_path / "x.mar"), not_in_store),  # an archive outside the store: refused all the same
            ("../../../../etc/passwd", "Relative path is not allowed"),
        ):
            with pytest.raises(ServingAPIError) as refusal:
                server.client.register(url, initial_workers=0)
            answer = refusal.value.response.json()
            assert 400 <= refusal.value.status_code < 500 and why in answer["message"], (url, answer)
        assert _Recorder.hits == []
    finally:
        web.shutdown()
        web.server_close()
    shutil.copy2(server.model_store / "sentiment.mar", server.model_store / "copy.mar")
    with pytest.raises(ServingAPIError) as conflict:  # an archive in the store is opened: it is version 1.0 again
        server.client.register("copy.mar", initial_workers=0)
    assert conflict.value.status_code == 409 and "already registered" in conflict.value.response.json()["message"]


def test_every_port_binds_to_loopback(server):
    frontend = psutil.Process(server_pid(server.workdir))
    processes = [frontend, *frontend.children(recursive=True)]
    listening = [c.laddr for p in processes for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    configured = {
        int(u.rsplit(":", 1)[1])
        for u in (server.client.inference_url, server.client.management_url, server.metrics_url)
    }
    assert configured <= {addr.port for addr in listening}
    assert len(listening) >= 5  # inference, management, metrics and the two gRPC ports
    assert {addr.ip for addr in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening


def test_no_review_text_in_any_log(server):
    """A unique canary in good, bad and failing requests; every file under logs/ is searched for it."""
    canary = f"canary{uuid.uuid4().hex}"
    client = server.client
    sent = [
        client.predict_raw(f"{canary} {GOOD}", "text/plain"),
        client.predict_raw(json.dumps({"text": f"{GOOD} {canary}", "key": canary}), JSON),
        client.predict_raw(json.dumps({"instances": [canary, {"text": 42, "key": canary}]}), JSON),
        client.predict_raw(json.dumps({"text": 42, "note": canary}), JSON),
        client.predict_raw(f'{{"text": "{canary}"', JSON),  # malformed JSON
        client.predict_raw(f"{canary} ".encode() + b"\xff\xfe", "text/plain"),  # not UTF-8
        client.predict_raw(json.dumps({"text": f"{canary} \ud800"}), JSON),  # lone surrogate
        client.predict_raw(json.dumps({"text": canary, "key": [canary]}), JSON),
        client.predict_raw(f"{canary} " * 20_000, "text/plain"),  # beyond max_chars
        client.predict_raw(f"{canary} {RAISE_TRIGGER}", "text/plain"),  # breaks the handler
        client.predict_raw(canary.encode(), "application/xml"),
    ]
    assert [r.status_code for r in sent] == [200, 200, 200, 400, 400, 400, 400, 400, 413, 500, 415]
    time.sleep(1.0)  # the frontend writes worker output to model_log.log asynchronously
    files = [p for p in server.logs.rglob("*") if p.is_file()]
    text = {p.name: p.read_bytes() for p in files}
    assert b"RuntimeError at" in text["model_log.log"]  # the failing request was logged, by id and type only
    assert [p.name for p in files if canary.encode() in text[p.name]] == []
