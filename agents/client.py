"""HTTP client for the registry's report ingest (docs: /v1/reports/batch).

Envelopes are sent as the exact bytes that were signed and spooled: the batch body is built by
concatenation, never by parsing and re-serialising them. Transport failures, overload and
rejections come back as distinct :mod:`agents.errors` types so the agent can decide whether to
keep a report (transport, overload) or move it aside (rejection).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import httpx

from agents.errors import AgentError, Overloaded, RegistryRejected, TransportError, Unavailable
from attestation.batchresult import (
    ACKNOWLEDGED_CODES,
    RETRY_LATER_CODES,
    BatchResult,
    ReportResult,
)
from attestation.errors import FormatError

__all__ = [
    "ACKNOWLEDGED_CODES",
    "RETRY_LATER_CODES",
    "BatchResult",
    "JsonApi",
    "RegistryClient",
    "ReportResult",
    "check_registry_url",
    "raise_for_problem",
]

_DEFAULT_RETRY_AFTER = 1.0


def _retry_after(value: str | None) -> float:
    if not value:
        return _DEFAULT_RETRY_AFTER
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    # Retry-After may also be an HTTP-date (RFC 9110 10.2.3).
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return _DEFAULT_RETRY_AFTER
    return max(when.timestamp() - time.time(), 0.0)


def raise_for_problem(response: httpx.Response) -> None:
    """Translate a non-2xx response into the agent's error types (2xx returns quietly)."""
    status = response.status_code
    if status < 300:
        return
    code, detail = "http_error", response.reason_phrase
    try:
        problem = response.json()
    except (ValueError, UnicodeDecodeError):
        problem = None
    if isinstance(problem, dict):
        code = str(problem.get("code") or code)
        detail = str(problem.get("detail") or problem.get("title") or detail)
    else:
        problem = None
    if status == 429:
        raise Overloaded(_retry_after(response.headers.get("retry-after")), detail)
    if status == 503:
        # database_unavailable (the registry's database is down or restarting): retry later.
        raise Unavailable(_retry_after(response.headers.get("retry-after")), f"{code}: {detail}")
    if status >= 500:
        raise TransportError(f"registry failed with {status} {code}: {detail}")
    raise RegistryRejected(status, code, detail, problem)


def check_registry_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host; :class:`AgentError` otherwise.

    Caught at start-up: a URL without a scheme would otherwise fail only at the first flush.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = (
            f"registry URL {url!r} must be absolute with an http:// or https:// scheme, "
            "e.g. https://registry.example.org"
        )
        raise AgentError(msg)
    return url


class JsonApi:
    """JSON calls to the registry with a bearer token; problems raise
    :class:`agents.errors.RegistryRejected`, unreachable registries :class:`TransportError`."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def get(self, path: str, token: str) -> Any:
        return self.request("GET", path, token, None)

    def post(self, path: str, token: str, body: Mapping[str, object]) -> dict[str, Any]:
        doc = self.request("POST", path, token, body)
        if not isinstance(doc, dict):
            raise TransportError(f"POST {path}: response is not a JSON object")
        return doc

    def request(self, method: str, path: str, token: str, body: Mapping[str, object] | None) -> Any:
        try:
            response = self._http.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:
            raise TransportError(f"cannot reach registry for {method} {path}: {exc!r}") from exc
        raise_for_problem(response)
        try:
            return response.json()
        except ValueError as exc:
            raise TransportError(f"{method} {path}: response is not JSON") from exc


def _parse_batch(response: httpx.Response, count: int) -> BatchResult:
    try:
        batch = BatchResult.from_dict(response.json())
    except (ValueError, FormatError, UnicodeDecodeError) as exc:
        # An answer we cannot read is not a verdict: the reports stay spooled.
        raise TransportError(f"unreadable batch response from registry: {exc}") from exc
    if any(not 0 <= r.index < count for r in batch.results):
        raise TransportError("batch response names a report index outside the batch")
    return batch


class RegistryClient:
    """Posts batches of signed envelopes to the registry with an operator token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "chipreg-agent/1"},
            timeout=timeout,
            transport=transport,
        )

    def post_batch(self, envelopes: Sequence[bytes]) -> BatchResult:
        """Send envelopes (exact canonical JSON bytes each) in one request."""
        if not envelopes:
            return BatchResult(accepted=0, rejected=0, results=())
        body = b'{"reports":[' + b",".join(envelopes) + b"]}"
        try:
            response = self._http.post(
                "/v1/reports/batch",
                content=body,
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            raise TransportError(f"cannot reach registry: {exc!r}") from exc
        raise_for_problem(response)
        return _parse_batch(response, len(envelopes))

    def check_token(self) -> None:
        """Check, before the first window, that the token is a live operator token.

        One cheap authenticated call (``GET /v1/tokens/self``). A refused token raises
        :class:`RegistryRejected` (never worth retrying: fix the setting); an unreachable
        registry raises :class:`TransportError`.
        """
        me = self._json("GET", "/v1/tokens/self")
        role = me.get("role") if isinstance(me, dict) else None
        if role != "operator":
            raise RegistryRejected(
                403,
                "not_an_operator_token",
                f"the token is a {role} token; agents post reports with an operator token",
            )

    def check_facility(self, facility_id: int) -> None:
        """Check that the facility exists and is this token's operator's (only its operator
        may read it): :class:`RegistryRejected` with 404 ``unknown_facility`` or 403."""
        self._json("GET", f"/v1/facilities/{facility_id}")

    def _json(self, method: str, path: str, body: object | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise TransportError(f"cannot reach registry: {exc!r}") from exc
        raise_for_problem(response)
        try:
            return response.json()
        except ValueError as exc:
            raise TransportError(f"{method} {path}: response is not JSON") from exc

    def open_gpu_challenges(self, chip_id: str) -> list[dict[str, Any]]:
        """The chip's unanswered GPU re-attestation challenges (PROTOCOL.md 11.4)."""
        doc = self._json("GET", f"/v1/chips/{quote(chip_id, safe='')}/gpu-challenges")
        if not isinstance(doc, list):
            raise TransportError("GPU challenges: response is not a JSON list")
        return [c for c in doc if isinstance(c, dict)]

    def post_gpu_evidence(self, chip_id: str, evidence: dict[str, object]) -> dict[str, Any]:
        """Answer a re-attestation challenge with GPU evidence."""
        doc = self._json("POST", f"/v1/chips/{quote(chip_id, safe='')}/gpu-evidence", evidence)
        if not isinstance(doc, dict):
            raise TransportError("GPU evidence: response is not a JSON object")
        return doc

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
