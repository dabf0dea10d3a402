"""The handler, initialized once from the unpacked .mar with an in-process context."""

from __future__ import annotations

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
def captures(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("captures")


@pytest.fixture(scope="session")
def served(model_dir, captures):
    context = make_context(model_dir, captured_to(model_dir, captures))
    handler = SentimentHandler()
    handler.initialize(context)
    return handler, context
