"""Chips' transfer conditions, declared clusters' compute budgets (and their revisions) and
threshold notifications."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import (
    ClusterBudget,
    ClusterBudgetRevision,
    ClusterNotification,
    TransferCondition,
)

__all__ = ["ConditionsBudgetsRepository"]


class ConditionsBudgetsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        obj: TransferCondition | ClusterBudget | ClusterBudgetRevision | ClusterNotification,
    ) -> None:
        self.session.add(obj)
        self.session.flush()

    def conditions(self, chip_id: str | None = None) -> list[TransferCondition]:
        stmt = select(TransferCondition).order_by(TransferCondition.id)
        if chip_id is not None:
            stmt = stmt.where(TransferCondition.chip_id == chip_id)
        return list(self.session.scalars(stmt))

    def budget(self, cluster_id: int) -> ClusterBudget | None:
        return self.session.get(ClusterBudget, cluster_id)

    def budgets(self) -> list[ClusterBudget]:
        return list(self.session.scalars(select(ClusterBudget)))

    def budget_revisions(self, cluster_id: int | None = None) -> list[ClusterBudgetRevision]:
        """Budget revisions in declaration order (oldest first)."""
        stmt = select(ClusterBudgetRevision).order_by(ClusterBudgetRevision.id)
        if cluster_id is not None:
            stmt = stmt.where(ClusterBudgetRevision.cluster_id == cluster_id)
        return list(self.session.scalars(stmt))

    def notifications(self, cluster_id: int | None = None) -> list[ClusterNotification]:
        stmt = select(ClusterNotification).order_by(ClusterNotification.id)
        if cluster_id is not None:
            stmt = stmt.where(ClusterNotification.cluster_id == cluster_id)
        return list(self.session.scalars(stmt))
