"""TorchServe's inference and management APIs on `requests`: tokens, predictions with the retry policy
(predict_raw, attempt_deadline), the management calls, and the version policy (promote; rollback to the previous
default). The command line over it is serving.client.cli (`python -m serving.client`).

Tokens come from TorchServe's key_file.json; an expired token is renewed with the API key and retried once.
A prediction TorchServe loses (a worker scaled down or killed under it) is asked for again: see predict_raw.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import requests

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
PROBE = "The film is fast moving and has several great action scenes."  # a review any version must answer


@dataclass(frozen=True)
class Promotion:
    model: str
    version: str  # registered and made the default
    workers: int  # as TorchServe describes them after the promotion
    previous: str | None  # the default before, still registered (None: the model was not registered)


@dataclass(frozen=True)
class Removal:
    model: str
    version: str  # unregistered
    default: str | None  # the default afterwards (None: no version remains)
    remaining: tuple[str, ...]  # the versions still registered


HISTORY = "default_history.json"  # beside key_file.json: the versions each model's default was, oldest first
HISTORY_KEPT = 20  # rollbacks in a row that can each return one step further


class VersionError(RuntimeError):
    """A version change refused before asking TorchServe (nothing to roll back to, removing the default)."""


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
        history_file: Path | None = None,
    ) -> None:
        """`history_file`: where the defaults a model had are recorded for `rollback` (default: HISTORY beside the
        key file; with neither, rollback has nothing to return to)."""
        self.inference_url = inference_url.rstrip("/")
        self.management_url = management_url.rstrip("/")
        self.key_file = Path(key_file) if key_file else None
        default_history = self.key_file.with_name(HISTORY) if self.key_file else None
        self.history_file = Path(history_file) if history_file else default_history
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
        """Make `version` the default, and record the one it replaces for `rollback` (TorchServe keeps no
        history of its defaults)."""
        previous = self.default_version(model)
        answer = _json_or_raise(self._manage("PUT", f"/models/{model}/{version}/set-default"))
        if previous is not None and previous != version:
            history = self.history()
            history[model] = [*history.get(model, []), previous][-HISTORY_KEPT:]
            self._keep_history(history)
        return answer

    def history(self) -> dict[str, list[str]]:
        """model -> the versions that were its default before the current one, oldest first."""
        try:
            return json.loads(self.history_file.read_text())
        except (AttributeError, OSError, ValueError):  # no file yet (or none configured): no history
            return {}

    def _keep_history(self, history: dict[str, list[str]]) -> None:
        if self.history_file is None:
            return
        partial = self.history_file.with_suffix(".tmp")
        partial.write_text(json.dumps(history, indent=2) + "\n")
        partial.replace(self.history_file)

    def unregister(self, model: str, version: str | None = None) -> dict:
        path = f"/models/{model}" + (f"/{version}" if version else "")
        return _json_or_raise(self._manage("DELETE", path))

    def list_models(self) -> dict:
        return _json_or_raise(self._manage("GET", "/models"))

    # -- versions: promote, roll back, remove -----------------------------------------------------------------
    def versions(self, model: str) -> list[str]:
        """The registered versions of `model`, lowest first; [] when it is not registered."""
        try:
            described = self.describe(model)
        except ServingAPIError as err:
            if err.status_code == 404:
                return []
            raise
        return sorted((m["modelVersion"] for m in described), key=version_key)

    def default_version(self, model: str) -> str | None:
        """The default version (TorchServe describes it when asked for no version); None when not registered."""
        try:
            [described] = _json_or_raise(self._manage("GET", f"/models/{model}"))
        except ServingAPIError as err:
            if err.status_code == 404:
                return None
            raise
        return described["modelVersion"]

    def worker_count(self, model: str, version: str) -> int:
        return sum(len(m["workers"]) for m in self.describe(model, version))

    def register_version(self, url: str, model: str = "sentiment", workers: int = 1) -> str:
        """Register an archive of `model` with exactly `workers` workers; returns the version it added.

        TorchServe starts the archive's own minWorkers..maxWorkers (model-config.yaml: 2) whatever initial_workers
        says (ApiUtils.handleRegister lets the archive win, and register takes no min/max), so the version is scaled
        to `workers` once registered: a second version beside the default must not take the default's cores.
        Registered asynchronously, as `scale` asks, so that predictions to the serving version never wait on a
        Netty event loop that TorchServe holds while new workers load; `scale` then waits until they are READY.
        """
        before = set(self.versions(model))
        self.register(url, initial_workers=workers, synchronous=False)
        added = set(self.versions(model)) - before
        if len(added) != 1:
            raise VersionError(f"registering {url} added no version of {model} (an archive of another model?)")
        [version] = added
        self.scale(model, workers, workers, version)
        return version

    def wait_until_answers(self, model: str, version: str, timeout: float = 120.0, poll: float = 0.5) -> None:
        """Until `version` itself answers a real prediction (not only registered: its workers load the model)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.predict_raw(PROBE, "text/plain", model, version)
            if response.status_code == 200 and response.json().get("model_version") == version:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{model} {version} did not answer a prediction within {timeout:.0f} s "
                    f"(last: {response.status_code} {response.text[:200]})"
                )
            time.sleep(poll)

    def promote(self, url: str, model: str = "sentiment", workers: int = 1, timeout: float = 120.0) -> Promotion:
        """Register an archive with `workers` workers, wait until it answers, then make it the default.

        The previous default stays registered, so that `rollback` can return to it at once. A version that never
        answers is unregistered again and the default is left as it was.
        """
        previous = self.default_version(model)
        version = self.register_version(url, model, workers)
        try:
            self.wait_until_answers(model, version, timeout)
        except Exception:
            self.unregister(model, version)  # not yet the default (unless the only one): the service is as it was
            raise
        self.set_default(model, version)
        logger.info("%s %s is the default (was %s)", model, version, previous)
        return Promotion(model, version, self.worker_count(model, version), previous)

    def rollback(self, model: str = "sentiment") -> Removal:
        """Make the previous default the default again (the last one recorded that is still registered), then
        unregister the one that was. Not the highest other version: after `set-default 3.0` from 1.0 with 2.0
        registered too, the previous default is 1.0."""
        current = self.default_version(model)
        if current is None:
            raise VersionError(f"{model} is not registered")
        registered = self.versions(model)
        others = [v for v in registered if v != current]
        if not others:
            raise VersionError(f"{model} has only version {current} registered: there is no version to roll back to")
        history = self.history()
        earlier = history.get(model, [])
        back = [i for i, v in enumerate(earlier) if v in others]
        if not back:
            raise VersionError(
                f"{model}: no record of the default before {current} (kept in {self.history_file}): "
                f"`set-default {model} <version>` names the one to return to, then `unregister {model} {current}`"
            )
        previous = earlier[back[-1]]
        _json_or_raise(self._manage("PUT", f"/models/{model}/{previous}/set-default"))  # recorded as no new step
        history[model] = earlier[: back[-1]]  # a second rollback goes one step further back
        self._keep_history(history)
        return self.unregister_version(model, current)

    def unregister_version(self, model: str, version: str | None = None) -> Removal:
        """Unregister one version (the default when None) and say what remains.

        TorchServe refuses to remove the default while other versions exist (403); that is said in words here.
        """
        default = self.default_version(model)
        version = version or default
        if version is None:
            raise VersionError(f"{model} is not registered")
        if version == default and len(self.versions(model)) > 1:
            raise VersionError(
                f"{model} {version} is the default: `rollback {model}` makes the previous version the default and "
                f"unregisters {version}, or `set-default {model} <version>` first"
            )
        self.unregister(model, version)
        remaining = tuple(self.versions(model))
        return Removal(model, version, self.default_version(model) if remaining else None, remaining)


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


def version_key(version: str) -> tuple:
    """Sort key for version strings: numeric parts compare as numbers, so 10.0 comes after 9.1."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-_+]", version))


def _json_or_raise(response: requests.Response):
    if response.status_code >= 400:
        raise ServingAPIError(response)
    return response.json()
