"""The handler, initialized once per archive from the unpacked .mar with an in-process context: both served models
(sentiment and the phase-2 sentiment-bigram) run one handler, so every handler test runs against both."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

from handler.sentiment_handler import SentimentHandler
from tests.unit.fake_context import make_context


def captured_to(model_dir: Path, directory: Path) -> dict:
    """The archive's model-config.yaml with its captures written to `directory` (never the repository's)."""
    config = yaml.safe_load((Path(model_dir) / "model-config.yaml").read_text())
    config["handler"]["capture"] = {**config["handler"].get("capture", {}), "directory": str(directory)}
    return config


@pytest.fixture(scope="session")
def bigram_model_dir(bigram_mar_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("bigram-mar")
    with zipfile.ZipFile(bigram_mar_path) as archive:
        archive.extractall(out)
    return out


@pytest.fixture(scope="session")
def captures(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("captures")


@pytest.fixture(scope="session", params=["sentiment", "sentiment-bigram"])
def served(request, captures):
    model_dir = request.getfixturevalue("model_dir" if request.param == "sentiment" else "bigram_model_dir")
    context = make_context(model_dir, captured_to(model_dir, captures))
    handler = SentimentHandler()
    handler.initialize(context)
    return handler, context
