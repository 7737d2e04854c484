"""Webhooks: subscriptions, the durable outbox, and the delivery worker.

New findings are written to the outbox (``webhook_outbox``) in the same transaction that stores
them, so a finding is never stored without its notifications nor notified without being stored.
The worker claims due rows, POSTs them signed per the Standard Webhooks specification
(https://www.standardwebhooks.com), and records the outcome; a failed attempt is retried with
exponential backoff until ``webhook_max_attempts``.

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
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from registry.auth import Principal, Role
from registry.db.models import Finding, WebhookDelivery, WebhookSubscription
from registry.errors import AlreadyExists, InvalidRequest, NotFound
from registry.repositories.webhooks import WebhookRepository
from registry.services.findings import finding_document
from registry.settings import Settings

if TYPE_CHECKING:
    import httpx  # delivery only: the API imports this module for subscriptions

__all__ = [
    "EVENT_FINDING_CREATED",
    "DeliveryStats",
    "WebhookDeliverer",
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


@dataclass(frozen=True)
class DeliveryStats:
    delivered: int = 0
    retried: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Claimed:
    id: int
    url: str
    secret: str
    event: str
    payload: bytes
    attempts: int


class WebhookDeliverer:
    """Delivers due outbox rows. Each claim and each outcome is its own short transaction; the
    HTTP call happens outside any transaction, under a lease (``next_attempt_at`` pushed ahead)
    so a crashed worker's rows come due again."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        clock: Callable[[], datetime],
        http: httpx.Client,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.http = http

    def backoff(self, attempts: int) -> timedelta:
        """Delay after the ``attempts``-th failure: base * 2^(attempts-1), capped."""
        s = self.settings
        return timedelta(
            seconds=min(s.webhook_max_backoff_s, s.webhook_backoff_s * 2 ** (attempts - 1))
        )

    def _claim(self, limit: int) -> list[_Claimed]:
        lease = timedelta(seconds=self.settings.webhook_timeout_s * 2 + 1)
        with self.sessions() as session:
            repo = WebhookRepository(session)
            now = self.clock()
            claimed = []
            for row in repo.claim_due(now, limit):
                sub = repo.subscription(row.subscription_id)
                if sub is None or not sub.active:
                    continue
                row.next_attempt_at = now + lease
                claimed.append(
                    _Claimed(
                        row.id, sub.url, sub.secret, row.event, bytes(row.payload), row.attempts
                    )
                )
            session.commit()
        return claimed

    def _post(self, item: _Claimed) -> str | None:
        """None on a 2xx answer, else the reason."""
        import httpx

        timestamp = int(self.clock().timestamp())
        msg_id = f"msg_{item.id}"  # the outbox row: the same on every retry of this delivery
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "chipreg-webhooks/1",
            "X-Chipreg-Event": item.event,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_payload(item.secret, msg_id, timestamp, item.payload),
        }
        try:
            response = self.http.post(
                item.url,
                content=item.payload,
                headers=headers,
                timeout=self.settings.webhook_timeout_s,
            )
        except httpx.HTTPError as exc:
            return f"transport error: {exc!r}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def deliver_due(self, limit: int = 100) -> DeliveryStats:
        delivered = retried = failed = 0
        for item in self._claim(limit):
            error = self._post(item)
            with self.sessions() as session:
                row = WebhookRepository(session).delivery(item.id)
                if row is None:
                    continue
                now = self.clock()
                row.attempts = item.attempts + 1
                if error is None:
                    row.delivered_at = now
                    row.last_error = None
                    delivered += 1
                elif row.attempts >= self.settings.webhook_max_attempts:
                    row.failed_at = now
                    row.last_error = error
                    failed += 1
                else:
                    row.next_attempt_at = now + self.backoff(row.attempts)
                    row.last_error = error
                    retried += 1
                session.commit()
        return DeliveryStats(delivered, retried, failed)
