"""The one error tree of the host agent, split by cause.

Transport failures (the registry is unreachable or overloaded) are kept apart from rejections
(the registry looked at what we sent and refused it): the first means "keep the report and try
again later", the second means "this report will never be accepted as it is".
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "BackendUnavailable",
    "GpuEvidenceUnavailable",
    "Overloaded",
    "RegistryRejected",
    "RetryLater",
    "SpoolError",
    "TransportError",
    "Unavailable",
]


class AgentError(Exception):
    """Root of every error raised by :mod:`agents`."""


class BackendUnavailable(AgentError):
    """The accelerator backend cannot be used on this host (no driver, no device, no key)."""


class GpuEvidenceUnavailable(BackendUnavailable):
    """This GPU cannot produce device evidence here; ``reason`` says why, machine-readably.

    Reasons: ``no_nvml`` (no driver or NVML library), ``old_bindings`` (pynvml lacks the
    confidential-computing calls), ``old_driver`` (the driver lacks them: R535 or later is
    needed), ``cc_off`` (confidential-computing mode is off), ``not_supported`` (the GPU cannot
    attest, e.g. before Hopper), ``nvml_error`` (any other NVML failure).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"no GPU evidence ({reason}): {detail}")
        self.reason = reason


class TransportError(AgentError):
    """The registry could not be reached, timed out, or failed with a 5xx status."""


class RetryLater(TransportError):
    """The registry said when to come back (``Retry-After``): wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float, detail: str) -> None:
        super().__init__(f"{detail} (retry after {retry_after:g} s)")
        self.retry_after = retry_after


class Overloaded(RetryLater):
    """The registry answered 429: back off for ``retry_after`` seconds, then send again."""

    def __init__(self, retry_after: float, detail: str = "registry overloaded") -> None:
        super().__init__(retry_after, detail)


class Unavailable(RetryLater):
    """The registry answered 503 (e.g. ``database_unavailable``): nothing was stored; back off
    for ``retry_after`` seconds, then send again."""

    def __init__(self, retry_after: float, detail: str = "registry unavailable") -> None:
        super().__init__(retry_after, detail)


class RegistryRejected(AgentError):
    """The registry refused the whole request with a 4xx problem response (not 429)."""

    def __init__(
        self, status: int, code: str, detail: str, problem: dict[str, object] | None = None
    ) -> None:
        super().__init__(f"registry rejected the request: {status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        #: The whole problem document (e.g. the per-item ``errors`` of a refused batch).
        self.problem = problem or {}


class SpoolError(AgentError):
    """The on-disk spool cannot be written or holds something it must not overwrite."""
