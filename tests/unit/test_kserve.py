"""deploy/kserve: the InferenceService is valid against KServe's own schema (the v1beta1 openAPIV3Schema of its
CRD, KServe v0.20.0, Apache-2.0, in tests/schemas) with unknown fields refused as `kubectl --validate=strict`
refuses them, its pod part against Kubernetes' (kubernetes-validate), and it runs the same image as deploy/k8s."""

from __future__ import annotations

import copy
import gzip
import json

import jsonschema
import kubernetes_validate
import pytest
import yaml

from serving.fleet import control as fleet
from tests.conftest import ROOT

SCHEMA = ROOT / "tests" / "schemas" / "kserve-v0.20.0-inferenceservice-v1beta1.json.gz"
MANIFEST = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
# The predictor's own fields; the rest of it is a PodSpec (KServe inlines one)
PREDICTOR_ONLY = {"minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "containerConcurrency", "timeout"}


def strict(schema: object) -> object:
    """The schema with additionalProperties false wherever it lists properties and keeps no unknown fields: the
    API server would prune an unknown field silently, a typo included."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    keeps_unknown = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and not keeps_unknown:
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def validator():
    schema = strict(json.loads(gzip.decompress(SCHEMA.read_bytes())))
    return jsonschema.Draft7Validator(schema)


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_valid_against_kserves_schema(validator):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(manifest())]
    assert errors == []


@pytest.mark.parametrize(
    "spoil",
    [
        lambda m: m["spec"]["predictor"].update(minReplica=2),  # a typo
        lambda m: m["spec"]["predictor"]["containers"][0].update(image=7),
        lambda m: m["spec"].update(predictor="sentiment"),
    ],
)
def test_an_invalid_manifest_is_refused(validator, spoil):
    """Without this, a schema that accepted anything would pass the test above."""
    bad = copy.deepcopy(manifest())
    spoil(bad)
    assert list(validator.iter_errors(bad))


def test_the_pod_part_is_a_valid_pod_spec():
    predictor = manifest()["spec"]["predictor"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "predictor"},
        "spec": {k: v for k, v in predictor.items() if k not in PREDICTOR_ONLY},
    }
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def test_it_serves_the_fleets_image_and_model_on_the_inference_port_only():
    isvc = manifest()
    assert isvc["metadata"]["name"] == fleet.MODEL  # /v2/models/<name>/infer must name the served model
    [container] = isvc["spec"]["predictor"]["containers"]
    deployment = yaml.safe_load((ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())
    [replica] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == replica["image"]
    assert [p["containerPort"] for p in container["ports"]] == [8080]  # never management
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/ping"
    assert isvc["spec"]["predictor"]["securityContext"]["runAsNonRoot"] is True
