"""TorchServe handler: a thin adapter from TorchServe's batch to the pure functions in handler.codec and model.

decode every request -> tokenize the whole batch in one call -> TorchScript forward -> sigmoid -> encode,
exactly one answer per request, each with its own status and Content-Type.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path

import torch
from ts.metrics.metric_type_enum import MetricTypes

from handler.codec import Limits, Request, decode, dumps, error_response, respond
from handler.errors import InternalError, ServingError
from model.infer import load_scorer, score

logger = logging.getLogger(__name__)
JSON = "application/json"
# Every metric the worker reports is a line it prints and the frontend parses: under load, per-batch lines cost
# as much worker CPU as tokenizing. So the timings are sampled (at most one batch per interval per worker) and
# TorchServe's own per-batch "Backend received inference at: <seconds>" line is dropped.
TIMINGS_EVERY_S = 0.1
PER_BATCH_LINE = "Backend received inference at: %d"


def handler_settings(model_yaml_config: dict | None) -> tuple[Limits, int]:
    """(request limits, torch threads) from the `handler:` section of model-config.yaml."""
    section = (model_yaml_config or {}).get("handler") or {}
    unknown = set(section) - {"max_chars", "max_instances", "max_key_chars", "torch_threads"}
    if unknown:
        raise ValueError(f"model-config.yaml handler: unknown settings {sorted(unknown)}")
    threads = int(section.get("torch_threads", 1))
    limits = Limits(**{k: int(v) for k, v in section.items() if k != "torch_threads"})
    if threads < 1 or min(limits.max_chars, limits.max_instances, limits.max_key_chars) < 1:
        raise ValueError("model-config.yaml handler: torch_threads and every limit must be >= 1")
    return limits, threads


class SentimentHandler:
    def __init__(self) -> None:
        self.scorer = None
        self.limits = Limits()
        self.initialized = False
        self.timings: dict[str, float] = {}  # seconds spent per stage by the last score() call
        self.next_timings = 0.0  # time.monotonic() from which the next batch reports its timings

    def initialize(self, context) -> None:
        """Load everything once per worker, or fail now with a message that says how to fix it."""
        model_dir = Path(context.system_properties["model_dir"])
        self.limits, threads = handler_settings(getattr(context, "model_yaml_config", None))
        torch.set_num_threads(threads)  # TorchServe sets none; workers must not fight over the cores
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # nor the tokenizer's own thread pool
        for log_handler in logging.getLogger().handlers:  # the worker's stdout, read line by line by the frontend
            log_handler.addFilter(_not_per_batch_line)
        self.scorer = load_scorer(model_dir)  # the version comes from the archive's own MANIFEST.json
        score(self.scorer, ["warm-up"])  # the first forward pass pays one-off costs; not a client's request
        self.initialized = True
        logger.info(
            "sentiment model %s loaded from %s with %d torch thread(s)", self.scorer.version, model_dir, threads
        )

    def handle(self, data: list[dict], context) -> list[bytes]:
        requests: list[Request | ServingError] = [self._decode(idx, row, context) for idx, row in enumerate(data)]
        logits = self._score_batch(requests, context)
        return [self._answer(idx, request, logits[idx], context) for idx, request in enumerate(requests)]

    def _score_batch(self, requests: list[Request | ServingError], context) -> list[list[float] | ServingError]:
        """Each request's logits from one forward pass; if that fails, each request is scored alone so a bug
        triggered by one input fails only that request (logged with its id), never its batch neighbours."""
        texts = [r.texts() if isinstance(r, Request) else [] for r in requests]
        metrics = getattr(context, "metrics", None)
        try:
            self.timings = {}
            flat = self.score([t for ts in texts for t in ts])
            if metrics is not None and time.monotonic() >= self.next_timings:  # histograms from metrics.yaml
                self.next_timings = time.monotonic() + TIMINGS_EVERY_S
                for name, seconds in self.timings.items():
                    metrics.add_time(name, seconds * 1000, None, "ms", metric_type=MetricTypes.HISTOGRAM)
        except Exception as err:  # noqa: BLE001 - isolate the failing request below
            logger.error(
                "scoring failed for the batch of requests %s (%s); scoring them one by one",
                _ids(context, len(requests)),
                where(err),
            )
            return [self._score_alone(idx, ts, context) for idx, ts in enumerate(texts)]
        out, start = [], 0
        for ts in texts:
            out.append(flat[start : start + len(ts)])
            start += len(ts)
        return out

    def _score_alone(self, idx: int, texts: list[str], context) -> list[float] | ServingError:
        try:
            return self.score(texts)
        except Exception as err:  # noqa: BLE001 - a bug: this request alone gets a generic 500
            logger.error("scoring failed for request %s: %s", _id(context, idx), where(err))
            return InternalError(_id(context, idx))

    def score(self, texts: list[str]) -> list[float]:
        return score(self.scorer, texts, self.timings)  # tokenize and forward times land in self.timings

    def _answer(self, idx: int, request: Request | ServingError, logits, context) -> bytes:
        """One request's reply; an unexpected failure here too is a generic 500 for that request alone."""
        try:
            if isinstance(logits, ServingError):
                request = logits
            if isinstance(request, ServingError):
                return self._reply(context, idx, *error_response(request))
            return self._reply(context, idx, *respond(request, logits, self.scorer.version))
        except Exception as err:  # noqa: BLE001 - a bug: this request alone gets a generic 500
            logger.error("encoding the answer failed for request %s: %s", _id(context, idx), where(err))
            return self._reply(context, idx, *error_response(InternalError(_id(context, idx))))

    def _decode(self, idx: int, row: dict, context) -> Request | ServingError:
        body = row.get("body") if row.get("body") is not None else row.get("data")
        try:
            return decode(body, _content_type(context, idx), self.limits)
        except ServingError as err:
            logger.info("request %s refused: %s", _id(context, idx), err.code)
            return err
        except Exception as err:  # noqa: BLE001 - a bug: this request alone gets a generic 500
            logger.error("decoding failed for request %s: %s", _id(context, idx), where(err))
            return InternalError(_id(context, idx))

    @staticmethod
    def _reply(context, idx: int, status: int, body: dict) -> bytes:
        context.set_response_status(status, "OK" if status == 200 else body["error"]["code"], idx)
        context.set_response_content_type(idx, JSON)
        return dumps(body)


def _not_per_batch_line(record: logging.LogRecord) -> bool:
    return record.msg != PER_BATCH_LINE


def _content_type(context, idx: int) -> str | None:
    headers = context.get_all_request_header(idx) or {}
    for name, value in headers.items():
        if isinstance(value, str) and name.lower() == "content-type":
            return value
    body_headers = headers.get("body")
    return body_headers.get("content-type") if isinstance(body_headers, dict) else None


def where(err: BaseException) -> str:
    """An exception's type and the code locations it passed, without its message: messages can quote the
    client's text (a tokenizer or JSON error does), and review text never goes to a log."""
    frames = traceback.extract_tb(err.__traceback__)
    path = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames[-4:]))
    return f"{type(err).__name__} at {path or 'unknown location'}"


def _id(context, idx: int) -> str | None:
    return context.get_request_id(idx)


def _ids(context, n: int) -> list:
    return [_id(context, idx) for idx in range(n)]
