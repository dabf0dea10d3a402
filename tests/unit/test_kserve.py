"""deploy/kserve: the InferenceService's own fields are checked against the v1beta1 fields it uses (written here
from KServe's API reference: KServe's CRD schema ships in no package this project installs), with unknown fields
refused as `kubectl --validate=strict` refuses them; its pod part against Kubernetes' schema (kubernetes-validate,
strict); and it runs the same image as deploy/k8s."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
import yaml

from serving.fleet.state import MODEL
from tests.conftest import ROOT

MANIFEST = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
# The predictor's own fields (v1beta1 ComponentExtensionSpec); the rest of a predictor is a PodSpec, inlined
PREDICTOR_FIELDS = {
    "minReplicas": {"type": "integer", "minimum": 0},
    "maxReplicas": {"type": "integer", "minimum": 0},
    "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
    "scaleTarget": {"type": "integer", "minimum": 1},
    "containerConcurrency": {"type": "integer", "minimum": 0},
    "timeout": {"type": "integer", "minimum": 1},
}
INFERENCE_SERVICE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["predictor"],
            "additionalProperties": False,
            "properties": {"predictor": {"type": "object", "properties": PREDICTOR_FIELDS}},
        },
    },
}


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def problems(isvc: dict) -> list[str]:
    """Every way `isvc` is not a valid InferenceService: its own fields, then its predictor's PodSpec."""
    found = [
        f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(INFERENCE_SERVICE).iter_errors(isvc)
    ]
    predictor = isvc.get("spec", {}).get("predictor")
    if isinstance(predictor, dict):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "predictor"},
            "spec": {k: v for k, v in predictor.items() if k not in PREDICTOR_FIELDS},
        }
        try:
            kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as e:
            found.append(f"predictor: {e}")
    return found


def test_a_valid_inference_service():
    assert problems(manifest()) == []


@pytest.mark.parametrize(
    "spoil",
    [
        lambda m: m["spec"]["predictor"].update(minReplica=2),  # a typo
        lambda m: m["spec"]["predictor"]["containers"][0].update(image=7),
        lambda m: m["spec"].update(predictor="sentiment"),
        lambda m: m["spec"]["predictor"].update(scaleMetric="gpu"),
        lambda m: m.update(kind="InferenceServices"),
    ],
)
def test_an_invalid_manifest_is_refused(spoil):
    """Without this, a check that accepted anything would pass the test above."""
    bad = copy.deepcopy(manifest())
    spoil(bad)
    assert problems(bad)


def test_it_serves_the_fleets_image_and_model_on_the_inference_port_only():
    isvc = manifest()
    assert isvc["metadata"]["name"] == MODEL  # /v2/models/<name>/infer must name the served model
    [container] = isvc["spec"]["predictor"]["containers"]
    deployment = yaml.safe_load((ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())
    [replica] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == replica["image"]
    assert [p["containerPort"] for p in container["ports"]] == [8080]  # never management
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/ping"
    assert isvc["spec"]["predictor"]["securityContext"]["runAsNonRoot"] is True
