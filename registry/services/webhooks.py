"""Webhooks: subscriptions, the durable outbox, and the delivery worker.

New findings are written to the outbox (``webhook_outbox``) in the same transaction that stores
them, so a finding is never stored without its notifications nor notified without being stored.
The worker claims due rows, POSTs them with an HMAC-SHA256 signature, and records the outcome;
a failed attempt is retried with exponential backoff until ``webhook_max_attempts``.

Signature (PROTOCOL.md section 10): ``X-Chipreg-Signature: sha256=<hex>`` where the HMAC key is
the subscription secret and the message is ``<X-Chipreg-Timestamp> "." <body bytes>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from registry.auth import Principal, Role
from registry.db.models import Finding, WebhookDelivery, WebhookSubscription
from registry.errors import AlreadyExists, NotFound
from registry.repositories.webhooks import WebhookRepository
from registry.services.findings import finding_document
from registry.settings import Settings

__all__ = [
    "EVENT_FINDING_CREATED",
    "DeliveryStats",
    "WebhookDeliverer",
    "WebhookService",
    "sign_payload",
]

EVENT_FINDING_CREATED = "finding.created"
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def sign_payload(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Chipreg-Signature`` value for a delivery."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.repo = WebhookRepository(session)
        self.clock = clock

    def create(
        self, caller: Principal, *, name: str, url: str, secret: str, min_severity: str
    ) -> WebhookSubscription:
        caller.require(Role.ADMIN)
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
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "chipreg-webhooks/1",
            "X-Chipreg-Event": item.event,
            "X-Chipreg-Delivery": str(item.id),
            "X-Chipreg-Timestamp": str(timestamp),
            "X-Chipreg-Signature": sign_payload(item.secret, timestamp, item.payload),
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
