"""TorchServe handler: a thin adapter from TorchServe's batch to the pure functions in handler.codec and model.

preprocess (decode every request) -> inference (one tokenizer call and one TorchScript forward pass for the
whole batch) -> postprocess (sigmoid, encode): exactly one answer per request, each with its own status.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

from ts.metrics.metric_type_enum import MetricTypes

from handler import capture, oip, settings, wire
from handler.codec import Request, decode, dumps, error_response, respond, sigmoid
from handler.errors import ServingError, internal_error
from model.infer import Score, limit_threads, load_scorer, score

logger = logging.getLogger(__name__)
HISTOGRAM = MetricTypes.HISTOGRAM
JSON = "application/json"
# Every metric the worker reports is a line it prints and the frontend parses: under load, per-batch lines cost
# as much worker CPU as tokenizing. So the timings are sampled (at most one batch per interval per worker) and
# TorchServe's own per-batch "Backend received inference at: <seconds>" line is dropped.
TIMINGS_EVERY_S = 0.1
PER_BATCH_LINE = "Backend received inference at: %d"
# The live drift signals (histograms of the probability and of the unknown-token fraction) cost a printed line per
# observation, so they too are a sample: at most SIGNALS_PER_SAMPLE instances per SIGNALS_EVERY_S per worker.
SIGNALS_EVERY_S = 0.25
SIGNALS_PER_SAMPLE = 8

Decoded = Request | ServingError  # one request after preprocess
Scored = list[Score] | ServingError  # its share of the batch after inference


class SentimentHandler:
    def __init__(self) -> None:
        self.scorer = None
        self.limits = None
        self.timings: dict[str, float] = {}  # seconds spent per stage by the last score() call
        self.next_timings = 0.0  # time.monotonic() from which the next batch reports its timings
        self.capture: capture.CaptureWriter | None = None  # appends every answered instance (handler.capture)
        self.capture_settings = settings.CaptureSettings()
        self.next_signals = 0.0  # time.monotonic() from which the next batch feeds the live histograms

    def initialize(self, context) -> None:
        """Load everything once per worker, or fail now with a message that says how to fix it."""
        model_dir = Path(context.system_properties["model_dir"])
        handler_settings = settings.parse(getattr(context, "model_yaml_config", None))
        self.limits = handler_settings.limits
        limit_threads(handler_settings.torch_threads)
        for log_handler in logging.getLogger().handlers:  # the worker's stdout, read line by line by the frontend
            log_handler.addFilter(_not_per_batch_line)
        self.scorer = load_scorer(model_dir)  # the version comes from the archive's own MANIFEST.json
        self.predict(["warm-up"])  # the first forward pass pays one-off costs; not a client's request
        self.capture_settings = handler_settings.capture
        self.capture = capture.start(
            handler_settings.capture, context.model_name, self.scorer.version, self.scorer.max_tokens
        )
        logger.info(
            "sentiment model %s loaded from %s with %d torch thread(s)",
            self.scorer.version,
            model_dir,
            handler_settings.torch_threads,
        )
        wire.install()  # TorchServe 0.12.0's worker protocol in one buffered pass (handler/wire.py)

    def handle(self, data: list[dict], context) -> list[bytes]:
        requests = self.preprocess(data, context)
        scores = self.inference(requests, context)
        return self.postprocess(requests, scores, context)

    def preprocess(self, data: list[dict], context) -> list[Decoded]:
        """Each request decoded on its own: a malformed one becomes its own error, never its neighbours'."""
        return [self._decode(idx, row, context) for idx, row in enumerate(data)]

    def inference(self, requests: list[Decoded], context) -> list[Scored]:
        """Each request's scores from one forward pass; if that fails, each request is scored alone so a bug
        triggered by one input fails only that request (logged with its id), never its batch neighbours."""
        texts = [r.texts() if isinstance(r, Request) else [] for r in requests]
        metrics = getattr(context, "metrics", None)
        try:
            self.timings = {}
            flat = self.predict([t for ts in texts for t in ts])
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
            return [self._predict_alone(idx, ts, context) for idx, ts in enumerate(texts)]
        out, start = [], 0
        for ts in texts:
            out.append(flat[start : start + len(ts)])
            start += len(ts)
        return out

    def predict(self, texts: list[str]) -> list[Score]:
        """The model call: texts in, scores out (tokenize and forward times land in self.timings)."""
        return score(self.scorer, texts, self.timings)

    def postprocess(self, requests: list[Decoded], scores: list[Scored], context) -> list[bytes]:
        answers = [self._answer(idx, request, scores[idx], context) for idx, request in enumerate(requests)]
        self._capture(requests, scores, context)
        return answers

    def _capture(self, requests: list[Decoded], scores: list[Scored], context) -> None:
        """Hand the batch to the capture writer and feed the live histograms; never fails or holds the batch."""
        try:
            batch = capture.items(requests, scores, _ids(context, len(requests)), self.capture_settings)
            if self.capture is not None:
                self.capture.submit(batch)
            metrics = getattr(context, "metrics", None)
            if metrics is not None:
                self._signals(batch, metrics)
        except Exception as err:  # noqa: BLE001 - a capture bug costs the records, never the answers
            if self.capture is not None:
                self.capture.count(lost=len(requests))
                self.capture.log_failure(where(err))
            else:
                logger.warning("live signals failed: %s", where(err))

    def _signals(self, batch: list[capture.Item], metrics) -> None:
        if self.capture is not None:
            lost, dropped = self.capture.unreported()
            for name, count in (("CaptureErrors", lost), ("CaptureDropped", dropped)):
                if count:
                    metrics.add_counter(name, count, None, [])
        if time.monotonic() < self.next_signals:
            return
        self.next_signals = time.monotonic() + SIGNALS_EVERY_S
        for item in capture.sample(batch, SIGNALS_PER_SAMPLE):
            fraction = item.unknown_tokens / item.tokens if item.tokens else 1.0
            metrics.add_metric("positive_review_probability", sigmoid(item.logit), "ratio", None, [], HISTOGRAM)
            metrics.add_metric("unknown_token_fraction", fraction, "ratio", None, [], HISTOGRAM)

    def _predict_alone(self, idx: int, texts: list[str], context) -> Scored:
        try:
            return self.predict(texts)
        except Exception as err:  # noqa: BLE001 - a bug: this request alone gets a generic 500
            logger.error("scoring failed for request %s: %s", _id(context, idx), where(err))
            return internal_error(_id(context, idx))

    def _decode(self, idx: int, row: dict, context) -> Decoded:
        body = row.get("body") if row.get("body") is not None else row.get("data")
        try:
            headers = _headers(context, idx)
            if oip.is_oip_route(headers):
                return oip.decode(body, headers, self.limits)
            return decode(body, _content_type(context, idx) or _named_content_type(row), self.limits)
        except ServingError as err:
            logger.info("request %s refused: %s", _id(context, idx), err.code)
            return err
        except Exception as err:  # noqa: BLE001 - a bug: this request alone gets a generic 500
            logger.error("decoding failed for request %s: %s", _id(context, idx), where(err))
            return internal_error(_id(context, idx))

    def _answer(self, idx: int, request: Decoded, scores: Scored, context) -> bytes:
        """One request's reply; an unexpected failure here too is a generic 500 for that request alone."""
        try:
            if isinstance(scores, ServingError):
                request = scores
            if isinstance(request, ServingError):
                return _reply(context, idx, *_error_response(request, context, idx))
            if isinstance(request, oip.InferRequest):
                return _reply(context, idx, *oip.respond(request, scores, context.model_name, self.scorer.version))
            return _reply(context, idx, *respond(request, scores, self.scorer.version))
        except Exception as err:  # noqa: BLE001 - a bug: this request alone gets a generic 500
            logger.error("encoding the answer failed for request %s: %s", _id(context, idx), where(err))
            return _reply(context, idx, *_error_response(internal_error(_id(context, idx)), context, idx))


def _error_response(err: ServingError, context, idx: int) -> tuple[int, dict]:
    """The error in the dialect of the route the request came by."""
    return oip.error_response(err) if oip.is_oip_route(_headers(context, idx)) else error_response(err)


def _reply(context, idx: int, status: int, body: dict) -> bytes:
    if status == 200:
        reason = "OK"
    else:  # the error code: native bodies hold it, Open Inference Protocol ones lead their message with it
        error = body["error"]
        reason = error["code"] if isinstance(error, dict) else error.split(":", 1)[0]
    context.set_response_status(status, reason, idx)
    context.set_response_content_type(idx, JSON)
    return dumps(body)


def _not_per_batch_line(record: logging.LogRecord) -> bool:
    return record.msg != PER_BATCH_LINE


def _headers(context, idx: int) -> dict:
    return context.get_all_request_header(idx) or {}


def _named_content_type(row: dict) -> str | None:
    """TorchServe's gRPC Predictions call carries no headers: its input map may name the body's media type as an
    input "content-type" beside "data" (docs/api.md: gRPC), so that keyed JSON requests work there too."""
    value = row.get("content-type")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _content_type(context, idx: int) -> str | None:
    headers = _headers(context, idx)
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
