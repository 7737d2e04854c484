"""The registry's error tree, split by cause. Each error knows its HTTP status and stable code;
``registry.api.problems`` maps them to RFC 9457 problem responses in one place.

The protocol core's errors (:mod:`attestation.errors`, :mod:`verifier.errors`) carry their code
but no HTTP status: the core knows nothing of HTTP. :func:`from_core` gives each of their causes
its status, here and only here; the API, the console and the CLI all call it, so a service lets a
core error through instead of translating it by hand.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeGuard

from attestation.errors import (
    AttestationError,
    DuplicateKeyError,
    FormatError,
    GpuEvidenceError,
    KeyFormatError,
)

if TYPE_CHECKING:
    from verifier.errors import VerifierError

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
    "as_registry_error",
    "from_core",
    "is_core_error",
    "reported_as",
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


# The status of each cause; the first match wins, so subclasses come before their bases. A format
# error is a body that does not parse (400, like malformed JSON), except a public key that is not
# one (422 bad_public_key: a field the body carried fine). Everything else the core refuses is
# well-formed but invalid (422): a signature that does not verify, a key or subject other than the
# expected one, a certificate out of its chain or validity, GPU evidence (every GPU code is 422,
# gpu_evidence_malformed included: section 11.5), a policy or fact the verifier cannot use.
_ATTESTATION_STATUS: tuple[tuple[type[AttestationError], type[RegistryError]], ...] = (
    (DuplicateKeyError, BadRequest),
    (GpuEvidenceError, InvalidRequest),
    (KeyFormatError, InvalidRequest),
    (FormatError, BadRequest),
    (AttestationError, InvalidRequest),
)
_VERIFIER_STATUS: type[RegistryError] = InvalidRequest


def is_core_error(exc: BaseException) -> TypeGuard[AttestationError | VerifierError]:
    """Whether ``exc`` is an error of the protocol core, which :func:`from_core` answers.

    The verifier is not imported here: serving requests must not load it (start-up time after a
    restart, docs/benchmarks.md), and until something has loaded it nothing can raise its errors.
    """
    if isinstance(exc, AttestationError):
        return True
    verifier_errors = sys.modules.get("verifier.errors")
    return verifier_errors is not None and isinstance(exc, verifier_errors.VerifierError)


def from_core(exc: AttestationError | VerifierError) -> RegistryError:
    """The registry error (status, code, detail) that answers the core error ``exc``."""
    if isinstance(exc, AttestationError):
        error = next(error for cause, error in _ATTESTATION_STATUS if isinstance(exc, cause))
    else:
        error = _VERIFIER_STATUS
    return error(str(exc), code=exc.code)


def as_registry_error(exc: BaseException) -> RegistryError | None:
    """``exc`` as the registry error that answers it; None if it is neither the registry's nor
    the protocol core's (a bug, or an outage: the caller decides)."""
    if isinstance(exc, RegistryError):
        return exc
    return from_core(exc) if is_core_error(exc) else None


@contextmanager
def reported_as(code: str) -> Iterator[None]:
    """Report a core error raised inside the block under ``code`` instead of its own.

    For the few requests whose code names what was sent (``malformed_measurement``, not the core's
    generic ``malformed``): the code travels on the exception, and :func:`from_core` still decides
    the status from its cause.
    """
    try:
        yield
    except Exception as exc:
        if is_core_error(exc):
            exc.code = code
        raise
