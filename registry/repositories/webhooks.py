"""Webhook subscriptions and the durable outbox of deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from registry.db.models import WebhookDelivery, WebhookSubscription

__all__ = ["WebhookRepository"]


class WebhookRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, subscription: WebhookSubscription) -> None:
        self.session.add(subscription)
        self.session.flush()

    def subscription(self, subscription_id: int) -> WebhookSubscription | None:
        return self.session.get(WebhookSubscription, subscription_id)

    def by_name(self, name: str) -> WebhookSubscription | None:
        return self.session.scalar(
            select(WebhookSubscription).where(WebhookSubscription.name == name)
        )

    def subscriptions(self, *, active_only: bool = False) -> list[WebhookSubscription]:
        stmt = select(WebhookSubscription).order_by(WebhookSubscription.id)
        if active_only:
            stmt = stmt.where(WebhookSubscription.active.is_(True))
        return list(self.session.scalars(stmt))

    def enqueue(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(WebhookDelivery), list(rows))

    def claim_due(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        """Due deliveries, row-locked; concurrent workers skip each other's rows (PostgreSQL)."""
        stmt = (
            select(WebhookDelivery)
            .where(
                WebhookDelivery.delivered_at.is_(None),
                WebhookDelivery.failed_at.is_(None),
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(stmt))

    def delivery(self, delivery_id: int) -> WebhookDelivery | None:
        return self.session.get(WebhookDelivery, delivery_id)

    def deliveries(self, subscription_id: int, limit: int = 100) -> list[WebhookDelivery]:
        return list(
            self.session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.subscription_id == subscription_id)
                .order_by(WebhookDelivery.id.desc())
                .limit(limit)
            )
        )
