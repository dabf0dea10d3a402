"""The Open Inference Protocol through the fleet's edge (nginx before real TorchServe replicas): tritonclient and
requests score as through /predictions, and the edge answers health, server and model metadata and model
readiness, which TorchServe does not."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as triton

from handler import oip
from serving.fleet.lifecycle import start_fleet, stop_fleet
from serving.fleet.state import MODEL, FleetState
from tests.integration.conftest import archive_with, model_config_with
from tests.integration.test_oip import REVIEWS, triton_infer
from tests.oip_catalogue import body, text

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is missing: `make test` installs it")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """One replica of one worker is enough for the protocol: test_fleet.py covers spreading and failover."""
    config_dir = tmp_path_factory.mktemp("fleet-oip")
    mar = archive_with(config_dir, model_config_with(minWorkers=1, maxWorkers=1))
    state = start_fleet(config_dir / "fleet", mar, replicas=1)
    yield state
    stop_fleet(Path(state.directory))


def credential(state: FleetState) -> dict:
    return {"Authorization": f"Bearer {state.credential}"}


def native(state: FleetState) -> list[dict]:
    r = requests.post(
        f"{state.url}/predictions/{MODEL}",
        json={"instances": REVIEWS},
        headers=credential(state),
        timeout=30,
    )
    assert r.status_code == 200
    return r.json()["predictions"]


def test_tritonclient_scores_through_the_edge_as_predictions_does(running):
    result = triton_infer(running.listen, MODEL, REVIEWS, credential(running), keys=list(range(len(REVIEWS))))
    expected = native(running)
    assert result.as_numpy("positive_review_probability").tolist() == [
        np.float32(p["positive_review_probability"]) for p in expected
    ]
    assert result.as_numpy("label").tolist() == [p["label"] for p in expected]
    assert result.as_numpy("key").tolist() == list(range(len(REVIEWS)))


def test_requests_gets_the_same_values_and_the_specs_errors(running):
    url = f"{running.url}/v2/models/{MODEL}/infer"
    r = requests.post(url, data=body(text(REVIEWS), id="edge-1"), headers=credential(running), timeout=30)
    assert r.status_code == 200 and r.json()["id"] == "edge-1"
    [probability] = [o["data"] for o in r.json()["outputs"] if o["name"] == "positive_review_probability"]
    assert probability == [p["positive_review_probability"] for p in native(running)]
    bad = requests.post(url, data=body(text([REVIEWS[0], ""])), headers=credential(running), timeout=30)
    assert bad.status_code == 400 and bad.json()["error"].startswith("empty_text: ")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = requests.post(url, data=body(text(REVIEWS)), headers=headers, timeout=30)
        assert refused.status_code == 401 and list(refused.json()) == ["error"]
    assert requests.get(url, headers=credential(running), timeout=30).status_code == 405


def test_the_edge_answers_health_and_metadata_for_tritonclient(running):
    client = triton.InferenceServerClient(url=running.listen)
    try:
        assert client.is_server_live() and client.is_server_ready()  # probes need no credential
        assert client.is_model_ready(MODEL, headers=credential(running))
        assert not client.is_model_ready(MODEL)  # the credential guards the models' routes
        assert client.get_model_metadata(MODEL, headers=credential(running)) == oip.metadata(MODEL)
        assert client.get_server_metadata()["name"] == "sentiment-fleet"
    finally:
        client.close()
    assert requests.get(f"{running.url}/v2/models/other", headers=credential(running), timeout=30).status_code == 404
