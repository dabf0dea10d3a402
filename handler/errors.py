"""The error registry: every failure a client can see, by cause, with its HTTP status and stable code.

One table: the codec raises these codes, the batch job writes them in its `error` column, and README's table of
codes is checked against it by tests/unit/test_errors.py. A `ServingError` raised for one request (or one
instance) answers that request alone; anything else is a bug, logged with the request id and answered with
`internal_error`, which reveals no internals.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    cause: str  # when a client gets it, in the words of README's table


ERRORS: dict[str, ErrorCode] = {
    e.code: e
    for e in (
        # the body as a whole
        ErrorCode("empty_body", 400, "the request body is empty"),
        ErrorCode("invalid_utf8", 400, "the body is not valid UTF-8"),
        ErrorCode("invalid_json", 400, "the body (or a batch row's JSON text) is not valid JSON"),
        ErrorCode("invalid_request", 400, "the JSON body is not an object"),
        ErrorCode("invalid_instances", 400, '"instances" is not a non-empty array'),
        ErrorCode("unsupported_media_type", 415, "the Content-Type is not application/json or text/plain"),
        ErrorCode("too_many_instances", 413, "more instances than `max_instances`"),
        ErrorCode("invalid_tensors", 400, "an Open Inference Protocol request's tensors are not as docs/api.md says"),
        # one review (a whole request, or one slot of `instances`)
        ErrorCode("invalid_instance", 400, "an instance is neither an object nor a string"),
        ErrorCode("missing_text", 400, 'no "text" (or "reviews") field, or it is null'),
        ErrorCode("invalid_text", 400, "the text is not a string, or holds lone UTF-16 surrogates"),
        ErrorCode("empty_text", 400, "the text is empty or holds only whitespace and control characters"),
        ErrorCode("text_too_long", 413, "the text is longer than `max_chars` characters"),
        ErrorCode("invalid_key", 400, '"key" is not a string or finite number, or is longer than `max_key_chars`'),
        ErrorCode("invalid_audit", 400, '"audit" is not an object with a probability in [0, 1] and a version string'),
        # the page's development server (serving/web/dev_server.py), before TorchServe sees the request
        ErrorCode("forbidden", 403, "a prediction sent to the page's server by anything but the page itself"),
        ErrorCode("unreachable", 502, "the page's server could not reach TorchServe, or it did not answer in time"),
        # the server
        ErrorCode("internal_error", 500, "the handler failed on this request (a bug); logged with its request id"),
    )
}


class ServingError(Exception):
    """A failure answered to the client: `code` from ERRORS (which gives the status) and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERRORS:
            raise ValueError(f"unregistered error code {code!r}: add it to handler.errors.ERRORS")
        super().__init__(message)
        self.code = code
        self.status = ERRORS[code].status
        self.message = message
        # the refused instance's own key, when that key was valid: its answer carries it, so that a client matches
        # the refusal by key as it matches a prediction (Keyed Predictions), never by position
        self.key: object = None

    def body(self) -> dict:
        error = {"error": {"code": self.code, "message": self.message}}
        return error if self.key is None else {"key": self.key, **error}


def internal_error(request_id: str | None = None) -> ServingError:
    where = f" (request id {request_id})" if request_id else ""
    return ServingError("internal_error", f"the server failed to score this request{where}; it has been logged")
