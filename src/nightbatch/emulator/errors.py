"""API error bodies and the HTTP status of each error type, as the real service sends them.

Every failure leaves the emulator as
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": "req_..."}`` with the
status the SDK maps to its exception classes (400 BadRequestError ... 529 OverloadedError).
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["ERROR_STATUS", "ApiError", "error_body", "invalid_field", "invalid_request", "not_found_message"]

ERROR_STATUS: Final[dict[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class ApiError(Exception):
    """An error the emulated API answers with; carries its type, status and optional extra headers."""

    def __init__(
        self, error_type: str, message: str, *, headers: dict[str, str] | None = None, fault: str | None = None
    ) -> None:
        if error_type not in ERROR_STATUS:
            raise ValueError(f"unknown API error type {error_type!r}; known: {', '.join(ERROR_STATUS)}")
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = ERROR_STATUS[error_type]
        self.headers = headers or {}
        self.fault = fault  # the emulated fault that caused it, for the request log

    def body(self, request_id: str | None) -> dict[str, Any]:
        """The JSON body for this error."""
        return error_body(self.error_type, self.message, request_id)


def error_body(error_type: str, message: str, request_id: str | None) -> dict[str, Any]:
    """``{"type": "error", "error": {...}, "request_id": ...}``."""
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def not_found_message(batch_id: str) -> str:
    """The 404 message for a Message Batch id the caller cannot see."""
    return f"message_batch_id: no Message Batch with id {batch_id!r}"


def invalid_request(message: str) -> ApiError:
    """A 400 ``invalid_request_error`` saying ``message``."""
    return ApiError("invalid_request_error", message)


def invalid_field(path: str, problem: str) -> ApiError:
    """A 400 ``invalid_request_error`` about one field, worded ``path: problem`` as the API words them."""
    return invalid_request(f"{path}: {problem}")
