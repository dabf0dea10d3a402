"""The import boundaries between the packages and between serving/'s rooms (docs/architecture.md), each proved in
a fresh interpreter in which the packages a module must not need cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

BLOCKER = """
import sys

# the label rule's home: pure Python, re-exported by the codec, so the device ships it; the rest of model stays out
ALLOWED = {"model", "model.logit", *ALSO_ALLOWED}

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED) and name not in ALLOWED:
            raise ImportError(f"{name} may not be imported here")

sys.meta_path.insert(0, Blocked())
"""

# what the operating side of serving/ never needs: the model's runtime and Spark
HEAVY = ("torch", "ts", "transformers", "pyspark", "numpy")
MODEL_SIDE = ("model", "handler", "batch", "edge")  # the model and its adapters: only serving.build ships them

# what the fleet never needs: the model's runtime and the rooms beside it
FLEET_BELOW = (*HEAVY, "model", "batch", "edge", "serving.build", "serving.web")


def fleet(*modules: str) -> set[str]:
    return {f"serving.fleet.{m}" for m in modules}


# module -> the packages (top-level, or a room such as serving.fleet) it must import without
BOUNDARIES = {
    "handler.codec": {"torch", "ts", "transformers", "tokenizers", "model", "serving", "batch"},
    "handler.errors": {"torch", "ts", "transformers", "tokenizers", "model", "serving", "batch"},
    "handler.settings": {"torch", "ts", "transformers", "tokenizers", "model", "serving", "batch"},
    "model.infer": {"ts", "handler", "serving", "batch", "pyspark"},
    "model.train": {"ts", "handler", "serving", "batch", "pyspark"},
    "batch.mar": {"ts", "serving"},
    "batch.scoring": {"ts", "serving", "pyspark"},
    # serving/'s rooms (docs/architecture.md): client <- run <- fleet, web; build apart; none imports a sibling above
    "serving.client.api": {*HEAVY, *MODEL_SIDE, "serving.run", "serving.fleet", "serving.build", "serving.web"},
    "serving.client.cli": {*HEAVY, *MODEL_SIDE, "serving.run", "serving.fleet", "serving.build", "serving.web"},
    "serving.run.server": {*HEAVY, *MODEL_SIDE, "serving.fleet", "serving.build", "serving.web"},
    # inside the fleet: state is the floor; the supervisor and rollout stand on it apart; lifecycle and status above
    "serving.fleet.state": {*FLEET_BELOW, *fleet("supervisor", "rollout", "lifecycle", "status", "proxy", "cli")},
    "serving.fleet.supervisor": {*FLEET_BELOW, *fleet("rollout", "lifecycle", "status", "proxy", "cli")},
    "serving.fleet.rollout": {*FLEET_BELOW, *fleet("supervisor", "lifecycle", "status", "proxy", "cli")},
    "serving.fleet.lifecycle": {*FLEET_BELOW, *fleet("rollout", "status", "cli")},
    "serving.fleet.status": {*FLEET_BELOW, *fleet("rollout", "lifecycle", "cli")},
    "serving.fleet.cli": set(FLEET_BELOW),
    "serving.web.dev_server": {*HEAVY, *MODEL_SIDE, "serving.client.cli", "serving.fleet", "serving.build"},
    "serving.build.archive": {
        "ts",
        "pyspark",
        "batch",
        "edge",
        "serving.run",
        "serving.client",
        "serving.fleet",
        "serving.web",
    },
    # two-phase prediction: the device runs onnxruntime + tokenizers and the codec, nothing of the server side
    "edge.device": {"torch", "ts", "transformers", "model", "serving", "batch", "pyspark", "requests"},
    "edge.cascade": {"torch", "ts", "transformers", "model", "serving", "batch", "pyspark", "requests"},
    "edge.__main__": {"torch", "ts", "transformers", "model", "serving", "batch", "pyspark", "requests"},
    "model.logit": {"numpy", "torch", "ts", "handler", "serving", "batch", "edge", "evaluation", "pyspark"},
    "model.calibration": {"torch", "ts", "handler", "serving", "batch", "edge", "pyspark"},
    "model.threshold": {"torch", "ts", "handler", "serving", "batch", "edge", "pyspark"},
    "model.onnx_export": {"ts", "handler", "serving", "batch", "edge", "pyspark"},
    "model.train_bigram": {"ts", "handler", "serving", "batch", "edge", "pyspark"},
    "serving.build.bundle": {
        "ts",
        "batch",
        "edge",
        "pyspark",
        "serving.run",
        "serving.client",
        "serving.fleet",
        "serving.web",
    },
}


# module -> what it may import of a package blocked above: the page's server answers its refusals from the error
# registry (pure Python), and nothing else of handler
ALSO_ALLOWED = {"serving.web.dev_server": {"handler", "handler.errors"}}


def import_without(module: str, blocked: set[str]) -> subprocess.CompletedProcess:
    also = sorted(ALSO_ALLOWED.get(module, ()))
    code = f"BLOCKED = {sorted(blocked)!r}\nALSO_ALLOWED = {also!r}\n{BLOCKER}\nimport {module}\n"
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("module", sorted(BOUNDARIES))
def test_module_imports_without_what_it_must_not_need(module):
    result = import_without(module, BOUNDARIES[module])
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_blocker_really_blocks():
    """Without this, a broken blocker would pass every test above."""
    result = import_without("handler.sentiment_handler", {"ts"})
    assert result.returncode != 0 and "ts.metrics" in result.stderr and "may not be imported" in result.stderr
