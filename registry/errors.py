"""The registry's error tree, split by cause. Each error knows its HTTP status and stable code;
``registry.api.problems`` maps them to RFC 9457 problem responses in one place."""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyExists",
    "BadRequest",
    "Conflict",
    "DatabaseUnavailable",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RegistryError",
    "Unauthenticated",
]


class RegistryError(Exception):
    """Root of the registry's domain errors."""

    status = 500
    code = "internal_error"
    title = "Internal error"
    retry_after: int | None = None
    """Seconds for the ``Retry-After`` header: set on errors a client should retry."""

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class BadRequest(RegistryError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthenticated(RegistryError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(RegistryError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(RegistryError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(RegistryError):
    status = 409
    code = "conflict"
    title = "Conflict"


class AlreadyExists(Conflict):
    code = "already_exists"
    title = "Already exists"


class PayloadTooLarge(RegistryError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class InvalidRequest(RegistryError):
    status = 422
    code = "invalid_request"
    title = "Invalid request"


class Overloaded(RegistryError):
    status = 429
    code = "overloaded"
    title = "Overloaded"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DatabaseUnavailable(RegistryError):
    """The database cannot be reached (down, restarting, locked): nothing was stored; retry."""

    status = 503
    code = "database_unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
