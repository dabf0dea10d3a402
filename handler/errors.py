"""Error taxonomy: every failure a client can see, with its HTTP status and a stable machine-readable code.

A `ServingError` raised for one request (or one instance) answers that request alone; anything else is a bug,
logged with the request id and answered with a generic `InternalError` that reveals no internals.
"""

from __future__ import annotations


class ServingError(Exception):
    status = 500
    phrase = "Internal Server Error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(ServingError):
    status = 400
    phrase = "Bad Request"


class PayloadTooLarge(ServingError):
    status = 413
    phrase = "Payload Too Large"


class UnsupportedMediaType(ServingError):
    status = 415
    phrase = "Unsupported Media Type"


class InternalError(ServingError):
    status = 500
    phrase = "Internal Server Error"

    def __init__(self, request_id: str | None = None) -> None:
        where = f" (request id {request_id})" if request_id else ""
        super().__init__("internal_error", f"the server failed to score this request{where}; it has been logged")
