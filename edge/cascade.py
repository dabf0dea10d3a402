"""Two-phase prediction: the device answers what it is sure of, the server's stronger model the rest.

For each review, phase 1 (edge.device) gives a calibrated probability p. When its confidence max(p, 1 - p) is
below the threshold, the review goes to phase 2 (the `sentiment-bigram` model on TorchServe) in one `instances`
request with its key; the server's answer replaces the device's. When phase 2 is needed but cannot be reached
(no server, a timeout, a 5xx, a refused token), the device's answer stands, marked `provisional: true`: offline,
the device still answers everything.

Audit: a fraction (`audit_rate`) of the confident answers is sent to phase 2 as well, each instance carrying
`"audit": {"phase1_probability": p, "phase1_version": v}` (checked by the codec; the server's prediction capture
records it beside the server's own answer), so that both answers of the same review can be compared: continued
evaluation of a model that runs where the server cannot see it (evaluation reads the device's answer as version
`device-<v>`). The device's answer is still the one returned, with the server's beside it under `audit`.

Inputs are checked by the server's own codec and limits (shipped in the bundle), so a review the server would
refuse gets the same error object here, in its own slot, and is never sent.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edge.device import DeviceModel, DeviceScore
from handler.codec import Instance, Key, decode, dumps, prediction

logger = logging.getLogger(__name__)
JSON = "application/json"


def defers(confidence: float, threshold: float) -> bool:
    """Phase 2 answers when phase 1's confidence is below the threshold; from 1 up, always (a confidence can
    round to 1.0); 0.5 never defers, as no confidence is below it. model.threshold.deferred is the same rule."""
    return threshold >= 1.0 or confidence < threshold


@dataclass(frozen=True)
class Server:
    """Where phase 2 answers: TorchServe's inference API and the model's name there."""

    url: str  # e.g. http://127.0.0.1:8080
    model: str
    token: str | None  # TorchServe's inference token (key_file.json), sent as a Bearer token; None: none sent
    timeout: float  # seconds; the bundle's settings.phase2_timeout_s, past which the device's answer stands

    def predict(self, instances: list[dict]) -> list[dict]:
        """The server's predictions for `instances`, in order; raises OSError or ValueError when it cannot answer
        (down, timeout, a status other than 200, an answer of the wrong shape)."""
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}/predictions/{self.model}",
            data=dumps({"instances": instances}),
            headers={"Content-Type": JSON, **({"Authorization": f"Bearer {self.token}"} if self.token else {})},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the configured server
            body = json.loads(response.read())
        predictions = body.get("predictions") if isinstance(body, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(instances):
            raise ValueError("the server's answer does not hold one prediction per instance")
        return predictions


def read_token(key_file: Path) -> str | None:
    """The inference token from TorchServe's key_file.json; None when there is no such file."""
    path = Path(key_file)
    if not path.exists():
        return None
    return json.loads(path.read_text())["inference"]["key"]


class TwoPhaseClient:
    def __init__(
        self,
        device: DeviceModel,
        server: Server | None = None,
        confidence: float | None = None,
        audit_rate: float | None = None,
        seed: int | None = None,
    ) -> None:
        """`confidence`: the threshold (default: the bundle's, chosen on the validation split); 0.5 never defers,
        1 always does. `audit_rate`: default the bundle's. `seed` fixes which answers are audited (tests)."""
        self.device = device
        self.server = server
        self.threshold = device.settings.threshold if confidence is None else float(confidence)
        self.audit_rate = device.settings.audit_rate if audit_rate is None else float(audit_rate)
        if not 0.5 <= self.threshold <= 1.0 or not 0.0 <= self.audit_rate <= 1.0:
            raise ValueError("the confidence threshold must be in [0.5, 1] and the audit rate in [0, 1]")
        self.random = random.Random(seed)

    def predict(self, texts: list[str], keys: list[Key] | None = None) -> list[dict]:
        """One answer per text, in order, each with its key (None when no keys are given)."""
        keys = [None] * len(texts) if keys is None else list(keys)
        if len(keys) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(keys)} keys")
        return self.predict_instances([{"text": t, "key": k} for t, k in zip(texts, keys, strict=True)])

    def predict_instances(self, instances: list) -> list[dict]:
        """One answer per instance of the server's `instances` format ({"text": ..., "key": ...} or a string):
        a prediction, or the error object the server would give that instance, with its key when it has one."""
        limit = self.device.settings.limits.max_instances
        answers: list[dict] = []
        for start in range(0, len(instances), limit):
            answers += self._predict_chunk(instances[start : start + limit])
        return answers

    def _predict_chunk(self, raw: list) -> list[dict]:
        # a refused instance's error object carries its key when the key was valid (handler.codec)
        items = decode({"instances": raw}, JSON, self.device.settings.limits).items
        valid = [i for i, item in enumerate(items) if isinstance(item, Instance)]
        scores = dict(zip(valid, self.device.score([items[i].text for i in valid]), strict=True))
        answers = [
            self._phase1(items[i], scores[i]) if i in scores else {**items[i].body(), "phase": 1, "provisional": False}
            for i in range(len(items))
        ]
        deferred = [i for i in valid if defers(scores[i].confidence, self.threshold)]
        confident = [i for i in valid if not defers(scores[i].confidence, self.threshold)]
        audited = [i for i in confident if self.random.random() < self.audit_rate]
        if not deferred and not audited:
            return answers
        sent = deferred + audited
        replies = self._phase2(
            [self._instance(items[i], answers[i], audit=i in audited) for i in sent], audits=len(audited)
        )
        for i, reply in zip(sent, replies, strict=True):
            if i in audited:
                if reply is not None:
                    answers[i]["audit"] = {
                        "phase2_probability": reply["positive_review_probability"],
                        "phase2_label": reply["label"],
                        "phase2_version": reply["model_version"],
                    }
            elif reply is None:
                answers[i]["provisional"] = True
            else:
                answers[i] = {**reply, "key": items[i].key, "phase": 2, "provisional": False}
        return answers

    def _phase1(self, item: Instance, score: DeviceScore) -> dict:
        answer = prediction(score, item.key, self.device.settings.model_version)
        return {**answer, "key": item.key, "phase": 1, "provisional": False}

    @staticmethod
    def _instance(item: Instance, answer: dict, audit: bool) -> dict:
        instance = {"text": item.text} if item.key is None else {"text": item.text, "key": item.key}
        if audit:
            instance["audit"] = {
                "phase1_probability": answer["positive_review_probability"],
                "phase1_version": answer["model_version"],
            }
        return instance

    def _phase2(self, instances: list[dict], audits: int = 0) -> list[dict | None]:
        """The server's prediction for each instance, or None where it gave none (an error, or no answer).

        The last `audits` instances are audits of confident answers: a lost audit changes no answer, so the
        warning counts them apart from the deferred reviews, whose answers become provisional."""
        if self.server is None:
            return [None] * len(instances)
        lost = f"{len(instances) - audits} deferred answers stand as provisional, {audits} audits are not made"
        try:
            predictions = self.server.predict(instances)
        except urllib.error.HTTPError as err:
            logger.warning("phase 2 answered %d: %s", err.code, lost)
            return [None] * len(instances)
        except (OSError, http.client.HTTPException, ValueError) as err:  # refused, timed out, reset, cut short,
            # or an answer of the wrong shape; only the error's type is logged: a message could quote the answer
            logger.warning("phase 2 unreachable (%s): %s", type(err).__name__, lost)
            return [None] * len(instances)
        out: list[dict | None] = []
        for instance, answer in zip(instances, predictions, strict=True):
            if not isinstance(answer, dict) or "error" in answer or answer.get("key") != instance.get("key"):
                logger.warning("phase 2 gave no prediction for one review: its phase-1 answer stands")
                answer = None
            out.append(answer)
        return out
