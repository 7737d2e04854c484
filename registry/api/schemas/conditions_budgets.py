"""Transfer conditions, cluster compute budgets and threshold notifications."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

from registry.api.schemas.common import CountryCode, UtcDatetime

__all__ = [
    "BudgetPublic",
    "BudgetSet",
    "ClusterObligations",
    "ConditionCreate",
    "ConditionPublic",
    "NotificationCreate",
    "NotificationPublic",
]


class ConditionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed_countries: list[CountryCode] = Field(
        max_length=250, description="countries the chip may be in; [] allows none"
    )
    effective_from: UtcDatetime | None = None


class ConditionPublic(BaseModel):
    id: int
    chip_id: str
    allowed_countries: list[str]
    effective_from: datetime
    declared_by: str
    declared_role: str
    created_at: datetime


class BudgetSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compute_budget_flop: FiniteFloat = Field(gt=0, le=1e40, description="total dense operations")


class BudgetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    cluster_id: int
    compute_budget_flop: float
    declared_at: datetime


class NotificationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold_flop: FiniteFloat = Field(gt=0, le=1e40, description="e.g. 1e25 or 1e26")
    notified_at: UtcDatetime | None = None
    note: str = Field(default="", max_length=2000)

    @field_validator("note")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()


class NotificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    cluster_id: int
    threshold_flop: float
    notified_at: datetime
    note: str
    declared_by: str
    created_at: datetime


class ClusterObligations(BaseModel):
    cluster_id: int
    budget: BudgetPublic | None
    notifications: list[NotificationPublic]
