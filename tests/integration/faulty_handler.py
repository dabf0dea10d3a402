"""A test-only handler: the shipped SentimentHandler, plus two triggers that exist only in test archives.

A review containing RAISE_TRIGGER makes scoring raise, as a bug would; one containing SLOW_TRIGGER holds its
worker for SLOW_SECONDS, as a stuck batch would. The shipped archive is built from handler/sentiment_handler.py
and has neither.
"""

from __future__ import annotations

import time

from handler.sentiment_handler import SentimentHandler

RAISE_TRIGGER = "trigger-handler-bug"
SLOW_TRIGGER = "trigger-slow-batch"
SLOW_SECONDS = 3.0


class FaultyHandler(SentimentHandler):
    def predict(self, texts: list[str]) -> list:
        if any(RAISE_TRIGGER in t for t in texts):
            raise RuntimeError(f"test fault; internals such as {texts[0][:40]!r} must not reach client or log")
        if any(SLOW_TRIGGER in t for t in texts):
            time.sleep(SLOW_SECONDS)
        return super().predict(texts)
