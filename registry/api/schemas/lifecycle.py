"""Finding status transitions and their audit trail; webhook subscriptions and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from registry.api.schemas.common import Name

__all__ = [
    "DeliveryPublic",
    "TransitionCreate",
    "TransitionPublic",
    "WebhookCreate",
    "WebhookPublic",
]


class TransitionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Literal["open", "acknowledged", "resolved"]
    note: str = Field(default="", max_length=4000)


class TransitionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    finding_id: int
    from_status: str
    to_status: str
    note: str
    actor_name: str
    actor_role: str
    at: datetime


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    url: AnyHttpUrl
    secret: str | None = Field(
        default=None,
        max_length=200,
        description="Standard Webhooks secret `whsec_<base64 of 24-64 random bytes>`; "
        "generated when absent",
    )
    min_severity: Literal["low", "medium", "high", "critical"] = "low"


class WebhookPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    url: str
    min_severity: str
    active: bool
    created_at: datetime


class WebhookCreated(WebhookPublic):
    """The new subscription with its signing secret, shown only in this answer."""

    secret: str


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    finding_id: int
    event: str
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None
