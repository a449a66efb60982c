"""Typed errors: one base with a code, a message, an HTTP status and whether a retry may help.

Every package subclasses `CBrainError`; the API maps it to the standard error body and the
stream workers use `retryable` to choose between retrying and dead-lettering.
"""

from __future__ import annotations

from typing import Any


class CBrainError(Exception):
    code: str = "internal_error"
    status: int = 500
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.details = details


class ValidationFailed(CBrainError):
    code = "validation_error"
    status = 422


class PayloadTooLarge(CBrainError):
    code = "payload_too_large"
    status = 413


class Unauthorized(CBrainError):
    code = "unauthorized"
    status = 401


class Forbidden(CBrainError):
    code = "forbidden"
    status = 403


class NotFound(CBrainError):
    code = "not_found"
    status = 404


class Conflict(CBrainError):
    code = "conflict"
    status = 409


class RateLimited(CBrainError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(CBrainError):
    code = "unavailable"
    status = 503
    retryable = True


class ConfigError(CBrainError):
    code = "config_error"
    status = 500
