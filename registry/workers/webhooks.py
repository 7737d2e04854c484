"""The webhook deliverer: POSTs due outbox rows, signed, and records each outcome.

Each claim and each outcome is its own short transaction
(:func:`registry.db.engine.session_scope`); the HTTP call happens outside any transaction, under
the lease the claim set, so a crashed worker's rows come due again. An outcome that cannot be
recorded (the database went away) is logged and skipped: its row comes due again when its lease
ends, and the receiver sees the same ``webhook-id`` (PROTOCOL.md section 10) and can drop the
duplicate. The rules (what is due, what a failure leads to) live in
:class:`registry.services.webhooks.WebhookService`. The continuous verifier
(:mod:`registry.workers.verifier`) runs a delivery round after each step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from registry.db.engine import session_scope
from registry.services.webhooks import DueDelivery, Outcome, WebhookService, sign_payload
from registry.settings import Settings

__all__ = ["DeliveryStats", "WebhookDeliverer"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryStats:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    unrecorded: int = 0  # attempts whose outcome could not be stored (they come due again)


class WebhookDeliverer:
    """Delivers due outbox rows: one :meth:`deliver_due` round per call."""

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

    def deliver_due(self, limit: int = 100) -> DeliveryStats:
        """Claim up to ``limit`` due rows, POST each, record each outcome.

        A failing claim raises (nothing was leased: the caller's loop retries); a failing
        outcome is logged and counted as ``unrecorded``, and the round goes on.
        """
        lease = timedelta(seconds=self.settings.webhook_timeout_s * 2 + 1)
        with session_scope(self.sessions) as session:
            claimed = WebhookService(session, self.clock).claim_due(limit, lease)
        counts = dict.fromkeys(Outcome, 0)
        unrecorded = 0
        for item in claimed:
            error = self._post(item)
            try:
                with session_scope(self.sessions) as session:
                    outcome = WebhookService(session, self.clock).record_attempt(
                        item,
                        error,
                        max_attempts=self.settings.webhook_max_attempts,
                        retry_delay=self.backoff,
                    )
            except Exception:  # one row's bookkeeping must not hold back the others
                logger.exception(
                    "webhook delivery %d: outcome not recorded; due again after its lease", item.id
                )
                unrecorded += 1
                continue
            if outcome is not None:
                counts[outcome] += 1
        return DeliveryStats(
            counts[Outcome.DELIVERED], counts[Outcome.RETRIED], counts[Outcome.FAILED], unrecorded
        )

    def _post(self, item: DueDelivery) -> str | None:
        """None on a 2xx answer, else the reason."""
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
