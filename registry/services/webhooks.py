"""Webhooks: subscriptions, the durable outbox, and the rules of its delivery.

New findings are written to the outbox (``webhook_outbox``) in the same transaction that stores
them, so a finding is never stored without its notifications nor notified without being stored.
The delivery worker (:mod:`registry.workers.webhooks`) claims due rows
(``WebhookService.claim_due``), POSTs them signed per the Standard Webhooks specification
(https://www.standardwebhooks.com), and records the outcome (``WebhookService.record_attempt``);
a failed attempt is retried with exponential backoff until ``webhook_max_attempts``. Nothing
here commits: the worker's scopes do.

Signature (PROTOCOL.md section 10): headers ``webhook-id`` (the outbox id, the same on every
retry), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256>``
over ``<id> "." <timestamp> "." <body bytes>``; the HMAC key is the base64-decoded part of the
subscription secret ``whsec_<base64>``, so off-the-shelf Standard Webhooks verifiers work.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from registry.auth import Principal, Role
from registry.db.models import Finding, WebhookDelivery, WebhookSubscription
from registry.errors import AlreadyExists, InvalidRequest, NotFound
from registry.repositories.webhooks import WebhookRepository
from registry.services.findings import finding_document

__all__ = [
    "EVENT_FINDING_CREATED",
    "DueDelivery",
    "Outcome",
    "WebhookService",
    "generate_secret",
    "secret_key",
    "sign_payload",
]

EVENT_FINDING_CREATED = "finding.created"
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


SECRET_PREFIX = "whsec_"  # noqa: S105  (the Standard Webhooks secret prefix, not a secret)
# Standard Webhooks: secrets are 24 to 64 random bytes, base64-encoded after the prefix.
SECRET_MIN_BYTES, SECRET_MAX_BYTES = 24, 64


def generate_secret() -> str:
    """A fresh ``whsec_<base64 of 32 random bytes>`` secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a subscription secret: the bytes behind ``whsec_``.

    Subscriptions created before Standard Webhooks signing hold free-form secrets; their key is
    the secret's UTF-8 bytes, as it was.
    """
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)


def _check_secret(secret: str) -> None:
    try:
        if not secret.startswith(SECRET_PREFIX):
            raise ValueError(f"must start with {SECRET_PREFIX!r}")
        size = len(secret_key(secret))
        if not SECRET_MIN_BYTES <= size <= SECRET_MAX_BYTES:
            raise ValueError(f"must encode {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes")
    except (ValueError, binascii.Error) as exc:
        raise InvalidRequest(
            f"secret must be whsec_ followed by base64 of {SECRET_MIN_BYTES} to "
            f"{SECRET_MAX_BYTES} random bytes: {exc}",
            code="bad_webhook_secret",
        ) from exc


def sign_payload(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>`` of
    ``msg_id.timestamp.body`` under :func:`secret_key`."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


@dataclass(frozen=True)
class DueDelivery:
    """A claimed outbox row with what its POST needs, read before the claim commits."""

    id: int
    url: str
    secret: str
    event: str
    payload: bytes
    attempts: int


class Outcome(StrEnum):
    """What one attempt led to."""

    DELIVERED = "delivered"
    RETRIED = "retried"
    FAILED = "failed"


class WebhookService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.repo = WebhookRepository(session)
        self.clock = clock

    def create(
        self, caller: Principal, *, name: str, url: str, secret: str | None, min_severity: str
    ) -> WebhookSubscription:
        """A new subscription; without ``secret`` the registry generates one (returned once)."""
        caller.require(Role.ADMIN)
        if secret is None:
            secret = generate_secret()
        _check_secret(secret)
        if self.repo.by_name(name) is not None:
            raise AlreadyExists(f"a webhook named {name!r} exists")
        sub = WebhookSubscription(
            name=name,
            url=url,
            secret=secret,
            min_severity=min_severity,
            active=True,
            created_at=self.clock(),
        )
        self.repo.add(sub)
        return sub

    def set_active(self, caller: Principal, subscription_id: int, active: bool) -> None:
        caller.require(Role.ADMIN)
        self._subscription(subscription_id).active = active

    def _subscription(self, subscription_id: int) -> WebhookSubscription:
        sub = self.repo.subscription(subscription_id)
        if sub is None:
            raise NotFound(f"no webhook {subscription_id}", code="unknown_webhook")
        return sub

    def subscriptions(self, caller: Principal) -> list[WebhookSubscription]:
        caller.require(Role.ADMIN)
        return self.repo.subscriptions()

    def deliveries(self, caller: Principal, subscription_id: int) -> list[WebhookDelivery]:
        caller.require(Role.ADMIN)
        self._subscription(subscription_id)
        return self.repo.deliveries(subscription_id)

    def enqueue_findings(self, findings: Sequence[Finding]) -> int:
        """Outbox rows for new (flushed) findings, one per matching active subscription."""
        subs = self.repo.subscriptions(active_only=True)
        if not subs or not findings:
            return 0
        now = self.clock()
        rows = []
        for f in findings:
            doc = {"event": EVENT_FINDING_CREATED, "finding": finding_document(f)}
            payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            for sub in subs:
                if SEVERITY_RANK.get(f.severity, 0) < SEVERITY_RANK.get(sub.min_severity, 0):
                    continue
                rows.append(
                    {
                        "subscription_id": sub.id,
                        "finding_id": f.id,
                        "event": EVENT_FINDING_CREATED,
                        "payload": payload,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
        self.repo.enqueue(rows)
        return len(rows)

    # -- delivery (the worker's steps; each in the worker's own transaction) --------------
    def claim_due(self, limit: int, lease: timedelta) -> list[DueDelivery]:
        """Up to ``limit`` due rows of active subscriptions, leased for ``lease``.

        The lease (``next_attempt_at`` pushed ahead) keeps another worker off a row while its
        POST is in flight, and brings the row due again if this worker dies before recording
        the outcome.
        """
        now = self.clock()
        claimed = []
        for row in self.repo.claim_due(now, limit):
            sub = self.repo.subscription(row.subscription_id)
            if sub is None or not sub.active:
                continue
            row.next_attempt_at = now + lease
            claimed.append(
                DueDelivery(
                    row.id, sub.url, sub.secret, row.event, bytes(row.payload), row.attempts
                )
            )
        return claimed

    def record_attempt(
        self,
        item: DueDelivery,
        error: str | None,
        *,
        max_attempts: int,
        retry_delay: Callable[[int], timedelta],
    ) -> Outcome | None:
        """Record one attempt at ``item`` (``error`` None: the receiver answered 2xx).

        A failed attempt is retried after ``retry_delay(attempts)`` until ``max_attempts``.
        None if the row is gone.
        """
        row = self.repo.delivery(item.id)
        if row is None:
            return None
        now = self.clock()
        row.attempts = item.attempts + 1
        row.last_error = error
        if error is None:
            row.delivered_at = now
            return Outcome.DELIVERED
        if row.attempts >= max_attempts:
            row.failed_at = now
            return Outcome.FAILED
        row.next_attempt_at = now + retry_delay(row.attempts)
        return Outcome.RETRIED
