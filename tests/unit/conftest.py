"""The handler, initialized once from the unpacked .mar with an in-process context."""

from __future__ import annotations

import pytest

from handler.sentiment_handler import SentimentHandler
from tests.unit.fake_context import make_context


@pytest.fixture(scope="session")
def served(model_dir):
    context = make_context(model_dir)
    handler = SentimentHandler()
    handler.initialize(context)
    return handler, context
