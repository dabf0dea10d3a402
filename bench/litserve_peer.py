"""The second peer: the same stateless function behind LitServe, the server a user would pick today for batched
serving in Python.

    python -m bench.litserve_peer --model-dir <unpacked .mar> --port 8123 [--token T]

LitServe's dynamic batching with the settings its documentation recommends for a production CPU server: 2
inference workers (one per core, `workers_per_device`), as many HTTP server processes as inference workers
(`num_api_servers` left to LitServe), ZeroMQ between them (`fast_queue`, "for > 100 RPS"), batches of up to 32
requests gathered for at most 1 ms (TorchServe's batchSize and maxBatchDelay, so the two batch alike), no client
file, warnings-only logs. The same model, tokenizer and functions as the TorchServe handler and the FastAPI peer
(`model.infer`, `handler.codec`), one torch thread per worker, the same Bearer token check on every request.

LitServe parses the JSON body in its HTTP process and hands the worker the parsed object, which handler.codec
accepts as TorchServe's decode_input_request would hand it: a benchmark peer, it answers the bench's requests
(JSON objects); a body that is not JSON gets LitServe's own error, not the service's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import litserve as ls
from fastapi import Header, HTTPException

from handler import settings
from handler.codec import Request, decode, error_response, respond
from handler.errors import ServingError
from model.infer import limit_threads, load_scorer, score

PATH = "/predictions/sentiment"  # the path wrk sends every stack


class SentimentAPI(ls.LitAPI):
    def __init__(self, model_dir: Path, token: str | None, **kwargs) -> None:
        super().__init__(api_path=PATH, **kwargs)
        self.model_dir = model_dir
        self.expected = f"Bearer {token}" if token else None

    def setup(self, device) -> None:
        limit_threads(1)  # as the TorchServe handler: one core per worker
        self.scorer = load_scorer(self.model_dir)
        score(self.scorer, ["warm-up"])
        self.limits = settings.read(self.model_dir / settings.MODEL_CONFIG).limits

    def authorize(self, authorization: str | None = Header(None)) -> None:
        if self.expected is not None and authorization != self.expected:
            raise HTTPException(status_code=401, detail={"error": {"code": "unauthorized"}})

    def decode_request(self, request: dict) -> Request | ServingError:
        try:
            return decode(request, "application/json", self.limits)
        except ServingError as err:
            return err

    def batch(self, inputs: list) -> list:
        return inputs  # decoded requests, scored together in predict

    def predict(self, requests: list) -> list:
        """One tokenizer call and one forward pass for the whole batch, as the TorchServe handler does."""
        texts = [r.texts() if isinstance(r, Request) else [] for r in requests]
        flat = score(self.scorer, [t for ts in texts for t in ts])
        out, start = [], 0
        for request, ts in zip(requests, texts, strict=True):
            out.append((request, flat[start : start + len(ts)]))
            start += len(ts)
        return out

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output: tuple) -> dict:
        request, scores = output
        status, payload = (
            error_response(request)
            if isinstance(request, ServingError)
            else respond(request, scores, self.scorer.version)
        )
        if status != 200:
            raise HTTPException(status_code=status, detail=payload)
        return payload


def server(model_dir: Path, token: str | None, workers: int = 2) -> ls.LitServer:
    api = SentimentAPI(model_dir, token, max_batch_size=32, batch_timeout=0.001)
    return ls.LitServer(api, accelerator="cpu", workers_per_device=workers, fast_queue=True, timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    server(args.model_dir, args.token, args.workers).run(
        host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
