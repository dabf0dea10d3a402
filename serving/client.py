"""A small client for TorchServe's inference and management APIs, on `requests`.

    python -m serving.client predict "The film was great."      # or --key K, or several texts (instances)
    python -m serving.client register sentiment-v2.mar --initial-workers 1
    python -m serving.client scale sentiment --min 2 --max 2
    python -m serving.client describe sentiment
    python -m serving.client set-default sentiment 2.0
    python -m serving.client unregister sentiment [2.0]

Tokens come from TorchServe's key_file.json; an expired token is renewed with the API key and retried once.
A prediction TorchServe loses (a worker scaled down or killed under it) is asked for again: see predict_raw.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import requests

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


class ServingClient:
    def __init__(
        self,
        inference_url: str = "http://127.0.0.1:8080",
        management_url: str = "http://127.0.0.1:8081",
        key_file: Path | None = ROOT / "key_file.json",
        timeout: float = 30.0,
        retries: int = 2,
        retry_backoff: float = 0.05,
        deadline: float = 1.0,
        deadline_per_mb: float = 2.0,
    ) -> None:
        self.inference_url = inference_url.rstrip("/")
        self.management_url = management_url.rstrip("/")
        self.key_file = Path(key_file) if key_file else None
        self.timeout = timeout
        self.session = requests.Session()
        self._keys: dict | None = None
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.deadline = deadline
        self.deadline_per_mb = deadline_per_mb
        self.retried = 0  # how many answers were lost by the server and asked for again
        self.presumed_lost = 0  # of those, how many never came and were given up on at the deadline

    # -- tokens -------------------------------------------------------------------------------------------
    def keys(self) -> dict:
        """{'inference': ..., 'management': ..., 'API': ...} from key_file.json ({} when auth is off)."""
        if self._keys is None:
            if self.key_file is None or not self.key_file.exists():
                self._keys = {}
            else:
                raw = json.loads(self.key_file.read_text())
                self._keys = {api: entry["key"] for api, entry in raw.items()}
        return self._keys

    def forget_keys(self) -> None:
        """Re-read key_file.json on next use (a restarted server writes new keys)."""
        self._keys = None

    def _headers(self, api: str) -> dict:
        key = self.keys().get(api)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def refresh_token(self, api: str) -> None:
        """Have TorchServe issue a new `api` ('inference' or 'management') token, authenticated by the API key.

        TorchServe answers with an empty body and rewrites key_file.json, which is read back.
        """
        response = self.session.get(
            f"{self.management_url}/token", params={"type": api}, headers=self._headers("API"), timeout=self.timeout
        )
        response.raise_for_status()
        self.forget_keys()

    def _call(self, api: str, method: str, url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        extra = kwargs.pop("headers", {})
        response = self.session.request(method, url, headers={**extra, **self._headers(api)}, **kwargs)
        if _token_refused(response) and self.keys().get("API"):
            logger.info("%s token refused; renewing it with the API key", api)
            self.refresh_token(api)
            response = self.session.request(method, url, headers={**extra, **self._headers(api)}, **kwargs)
        return response

    # -- inference ----------------------------------------------------------------------------------------
    def ping(self) -> bool:
        """True when the frontend reports Healthy (TorchServe wants the inference token even here)."""
        try:
            return self._call("inference", "GET", f"{self.inference_url}/ping", timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or too busy starting to answer
            return False

    def predict_raw(
        self,
        body: bytes | str,
        content_type: str,
        model: str = "sentiment",
        version: str | None = None,
        retries: int | None = None,
    ) -> requests.Response:
        """POST one request. Predictions are stateless, hence idempotent, so an answer lost by the server itself
        is asked for again after a short back-off: TorchServe's own 500/503/507 (a worker scaled down or killed
        mid-batch, a full job queue; not the handler's errors), and silence past `attempt_deadline`, because
        TorchServe 0.12 drops the jobs a worker has just polled when it is scaled down and never answers them.
        The last attempt waits the full `timeout`, so a request that is merely slow is still answered."""
        path = f"{self.inference_url}/predictions/{model}" + (f"/{version}" if version else "")
        data = body.encode("utf-8") if isinstance(body, str) else body
        attempts = 1 + (self.retries if retries is None else retries)
        deadline = attempt_deadline(len(data), self.deadline, self.deadline_per_mb)
        for attempt in range(attempts - 1):
            try:
                response = self._post(path, data, content_type, timeout=deadline)
                if not _lost_by_server(response):
                    return response
            except requests.Timeout:
                logger.warning("no answer within %.2f s: presumed lost by the server, asking again", deadline)
                self.presumed_lost += 1
            self.retried += 1
            time.sleep(self.retry_backoff * (attempt + 1))
        return self._post(path, data, content_type, timeout=self.timeout)

    def _post(self, path: str, data: bytes, content_type: str, timeout: float) -> requests.Response:
        return self._call("inference", "POST", path, data=data, headers={"Content-Type": content_type}, timeout=timeout)

    def predict(self, text: str, key: str | int | None = None, model: str = "sentiment") -> dict:
        payload = {"text": text} if key is None else {"text": text, "key": key}
        response = self.predict_raw(json.dumps(payload), "application/json", model)
        response.raise_for_status()
        return response.json()

    def predict_many(self, instances: list[dict], model: str = "sentiment") -> list[dict]:
        response = self.predict_raw(json.dumps({"instances": instances}), "application/json", model)
        response.raise_for_status()
        return response.json()["predictions"]

    # -- management ---------------------------------------------------------------------------------------
    def _manage(self, method: str, path: str, **params) -> requests.Response:
        params = {k: v for k, v in params.items() if v is not None}
        return self._call("management", method, f"{self.management_url}{path}", params=params)

    def register(
        self,
        url: str,
        initial_workers: int = 1,
        synchronous: bool = True,
        response_timeout: int | None = None,
        batch_size: int | None = None,
        max_batch_delay: int | None = None,
    ) -> dict:
        """Register an archive; batch_size/max_batch_delay override its model-config.yaml (this is the only way
        to get maxBatchDelay 0: TorchServe reads 0 in model-config.yaml or config.properties as unset, 100 ms)."""
        response = self._manage(
            "POST",
            "/models",
            url=url,
            initial_workers=initial_workers,
            synchronous=str(synchronous).lower(),
            response_timeout=response_timeout,
            batch_size=batch_size,
            max_batch_delay=max_batch_delay,
        )
        return _json_or_raise(response)

    def scale(
        self,
        model: str,
        min_worker: int,
        max_worker: int | None = None,
        version: str | None = None,
        timeout: float = 120.0,
    ) -> dict:
        """Set a model's worker count and return once the workers are all READY.

        TorchServe is asked asynchronously and this client waits by polling: with synchronous=true TorchServe
        blocks a Netty event loop that inference connections share until the new workers have loaded, and every
        prediction on that loop stalls for the whole scale-up."""
        max_worker = max_worker or min_worker
        path = f"/models/{model}" + (f"/{version}" if version else "")
        params = {"min_worker": min_worker, "max_worker": max_worker, "synchronous": "false"}
        response = self._manage("PUT", path, **params)
        if response.status_code == 500:
            # TorchServe 0.12 can fail a scale-down under traffic with a NullPointerException: the worker it stops
            # empties its batch while the scale-down is still reading it. The worker is already off the model's
            # list by then, so asking again for the same count is harmless: it finds the count reached.
            logger.warning("scaling %s answered 500; asking again", path)
            response = self._manage("PUT", path, **params)
        _json_or_raise(response)
        workers = self.wait_for_workers(path, min_worker, max_worker, timeout)
        return {"status": f"{len(workers)} workers READY for model: {model}", "workers": workers}

    def wait_for_workers(self, path: str, least: int, most: int, timeout: float, poll: float = 0.2) -> list[dict]:
        """Poll GET `path` (one model version) until it has `least` to `most` workers, all READY."""
        deadline = time.monotonic() + timeout
        while True:
            [described] = _json_or_raise(self._manage("GET", path))
            workers = described["workers"]
            if least <= len(workers) <= most and all(w["status"] == "READY" for w in workers):
                return workers
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: not {least}-{most} READY workers after {timeout:.0f} s: {workers}")
            time.sleep(poll)

    def describe(self, model: str, version: str | None = None) -> list[dict]:
        path = f"/models/{model}" + (f"/{version}" if version else "/all")
        return _json_or_raise(self._manage("GET", path))

    def set_default(self, model: str, version: str) -> dict:
        return _json_or_raise(self._manage("PUT", f"/models/{model}/{version}/set-default"))

    def unregister(self, model: str, version: str | None = None) -> dict:
        path = f"/models/{model}" + (f"/{version}" if version else "")
        return _json_or_raise(self._manage("DELETE", path))

    def list_models(self) -> dict:
        return _json_or_raise(self._manage("GET", "/models"))


def attempt_deadline(body_bytes: int, deadline: float, deadline_per_mb: float) -> float:
    """Seconds to wait for an answer before presuming it lost: `deadline` for an ordinary review, plus time in
    proportion to the body, since the largest request the limits allow (6.5 MB) takes seconds to tokenize."""
    return deadline + deadline_per_mb * body_bytes / 1_000_000


class ServingAPIError(RuntimeError):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"{response.request.method} {response.url} -> {response.status_code}: {response.text[:500]}")
        self.status_code = response.status_code
        self.response = response


def _token_refused(response: requests.Response) -> bool:
    """TorchServe refuses a missing, wrong or expired token with 400 InvalidKeyException."""
    return response.status_code in (400, 401) and "InvalidKeyException" in response.text


def _lost_by_server(response: requests.Response) -> bool:
    """A 500/503/507 from TorchServe itself, not an answer from the handler: 500 for a worker scaled down
    mid-batch, 503 for a full job queue, 507 "Worker died." for a worker killed mid-batch."""
    if response.status_code not in (500, 503, 507):
        return False
    try:
        return "error" not in response.json()  # the handler's own errors carry {"error": {...}}
    except ValueError:
        return True


def _json_or_raise(response: requests.Response):
    if response.status_code >= 400:
        raise ServingAPIError(response)
    return response.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inference-url", default="http://127.0.0.1:8080")
    parser.add_argument("--management-url", default="http://127.0.0.1:8081")
    parser.add_argument("--key-file", type=Path, default=ROOT / "key_file.json")
    parser.add_argument("--model", default="sentiment")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="score one or more reviews")
    p.add_argument("texts", nargs="+")
    p.add_argument("--key")
    p = sub.add_parser("register", help="register an archive that is in the model store")
    p.add_argument("url")
    p.add_argument("--initial-workers", type=int, default=1)
    p = sub.add_parser("scale", help="set a model's worker count")
    p.add_argument("name")
    p.add_argument("--min", type=int, required=True)
    p.add_argument("--max", type=int)
    p.add_argument("--version")
    p = sub.add_parser("describe", help="describe a model's versions and workers")
    p.add_argument("name")
    p.add_argument("--version")
    p = sub.add_parser("set-default", help="make a version the default")
    p.add_argument("name")
    p.add_argument("version")
    p = sub.add_parser("unregister", help="unregister a model (or one version)")
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    sub.add_parser("list", help="list registered models")
    args = parser.parse_args(argv)

    client = ServingClient(args.inference_url, args.management_url, args.key_file)
    try:
        if args.command == "predict":
            if len(args.texts) == 1:
                result = client.predict(args.texts[0], args.key, model=args.model)
            else:
                result = client.predict_many([{"text": t} for t in args.texts], model=args.model)
        elif args.command == "register":
            result = client.register(args.url, args.initial_workers)
        elif args.command == "scale":
            result = client.scale(args.name, args.min, args.max, args.version)
        elif args.command == "describe":
            result = client.describe(args.name, args.version)
        elif args.command == "set-default":
            result = client.set_default(args.name, args.version)
        elif args.command == "unregister":
            result = client.unregister(args.name, args.version)
        else:
            result = client.list_models()
    except (ServingAPIError, requests.RequestException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
