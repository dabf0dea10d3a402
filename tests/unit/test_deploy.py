"""The cluster definitions: valid against the Kubernetes schemas (kubernetes-validate, offline), and saying what
the fleet on one machine does (non-root, /ping probes, inference-only exposure, a metric TorchServe exports)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from serving.run.server import read_properties
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / "k8s" / name).read_text())


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path):
    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)


def test_an_invalid_manifest_is_refused():
    """Without this, a validator that accepted anything would pass every test above."""
    bad = load("deployment.yaml")
    bad["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_every_kind_the_cluster_needs_is_there():
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in MANIFESTS}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}


def test_replicas_run_as_non_root_with_ping_probes():
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    [container] = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/ping"
    assert {p["containerPort"] for p in container["ports"]} == {8080, 8082}  # never management


def test_the_network_admits_inference_and_metrics_only():
    ports = {p["port"] for rule in load("networkpolicy.yaml")["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {8080, 8082}
    assert [p["port"] for p in load("service.yaml")["spec"]["ports"]] == [8080]


def test_the_autoscaler_uses_a_metric_torchserve_exports():
    [metric] = load("hpa.yaml")["spec"]["metrics"]
    counter = metric["pods"]["metric"]["name"].replace("_per_second", "_total")  # the adapter's rate of it
    exported = {
        m["name"] for kind in yaml.safe_load((ROOT / "metrics.yaml").read_text())["ts_metrics"].values() for m in kind
    }
    assert counter in exported


def test_the_container_is_a_non_root_replica_with_the_archive_baked_in():
    text = (DEPLOY / "Containerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/ping" in text
    assert "COPY model_store/sentiment.mar" in text
    replica = read_properties(DEPLOY / "replica.properties")
    assert replica["management_address"].startswith("http://127.0.0.1:")  # management never leaves the pod
    assert set(replica) < set(read_properties(ROOT / "config.properties")) | {"disable_token_authorization"}
