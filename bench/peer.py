"""The peer: the same stateless function (model.infer + handler.codec) behind FastAPI, run by uvicorn.

    BENCH_MODEL_DIR=<unpacked .mar> BENCH_TOKEN=... uvicorn bench.peer:app --workers 2 --no-access-log

Same model, tokenizer and functions as the TorchServe handler; the same Bearer token check on every request.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

from handler import settings
from handler.codec import decode, dumps, error_response, respond
from handler.errors import ServingError
from handler.settings import Limits
from model.infer import Scorer, limit_threads, load_scorer, score

JSON = "application/json"


def answer(scorer: Scorer, limits: Limits, body: bytes, content_type: str | None) -> tuple[int, bytes]:
    """(status, JSON bytes) for one request: decode -> tokenize + forward -> sigmoid + encode."""
    try:
        request = decode(body, content_type, limits)
    except ServingError as err:
        status, payload = error_response(err)
        return status, dumps(payload)
    status, payload = respond(request, score(scorer, request.texts()), scorer.version)
    return status, dumps(payload)


def create_app(model_dir: Path, token: str | None, threads: int = 1) -> FastAPI:
    limit_threads(threads)  # as the TorchServe handler: one core per worker
    scorer = load_scorer(model_dir)
    score(scorer, ["warm-up"])
    limits = settings.read(model_dir / settings.MODEL_CONFIG).limits
    expected = f"Bearer {token}" if token else None
    app = FastAPI()

    @app.post("/predictions/sentiment")
    async def predict(request: Request) -> Response:  # CPU-bound and short: run inline, no thread pool hop
        if expected is not None and request.headers.get("authorization") != expected:
            return Response(b'{"error":{"code":"unauthorized"}}', status_code=401, media_type=JSON)
        status, body = answer(scorer, limits, await request.body(), request.headers.get("content-type"))
        return Response(body, status_code=status, media_type=JSON)

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b'{"status":"Healthy"}', media_type=JSON)

    return app


def _app_from_env() -> FastAPI | None:
    model_dir = os.environ.get("BENCH_MODEL_DIR")
    return create_app(Path(model_dir), os.environ.get("BENCH_TOKEN")) if model_dir else None


app = _app_from_env()
