"""Transfer conditions and cluster budgets: where a chip may be (the countries allowed from a
date) and how much compute a declared cluster may use (its budget), with the operator's
threshold notifications."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from attestation.records import (
    ClusterBudgetRecord,
    ClusterNotificationRecord,
    TransferConditionRecord,
)
from registry.auth import Principal, Role
from registry.db.models import (
    Chip,
    ClusterBudget,
    ClusterBudgetRevision,
    ClusterNotification,
    DeclaredCluster,
    TransferCondition,
)
from registry.errors import InvalidRequest, NotFound
from registry.repositories.chips import ChipRepository
from registry.repositories.conditions_budgets import ConditionsBudgetsRepository
from registry.repositories.facilities import FacilityRepository
from registry.services.log import LogAppender

__all__ = ["ConditionsBudgetsService", "parse_countries"]


def parse_countries(stored: str) -> frozenset[str]:
    """The stored form is sorted codes joined by commas; "" allows no country."""
    return frozenset(c for c in stored.split(",") if c)


class ConditionsBudgetsService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.repo = ConditionsBudgetsRepository(session)
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.log = LogAppender(session)
        self.clock = clock

    # -- transfer conditions -------------------------------------------------------------
    def _chip(self, chip_id: str) -> Chip:
        chip = self.chips.get(chip_id)
        if chip is None:
            raise NotFound(f"chip {chip_id!r} is not enrolled", code="unknown_chip")
        return chip

    def add_condition(
        self,
        caller: Principal,
        *,
        chip_id: str,
        allowed_countries: Sequence[str],
        effective_from: datetime | None = None,
    ) -> TransferCondition:
        """Admins (at a transfer) and the chip's vendor (at enrollment) set where it may be."""
        caller.require(Role.ADMIN, Role.VENDOR)  # before any lookup: a 404 tells too
        chip = self._chip(chip_id)
        caller.require_vendor(chip.vendor_id)
        now = self.clock()
        condition = TransferCondition(
            chip_id=chip_id,
            allowed_countries=",".join(sorted(set(allowed_countries))),
            effective_from=effective_from or now,
            declared_by=caller.name,
            declared_role=caller.role.value,
            created_at=now,
        )
        # Logged with who set it, so partners re-derive the forbidden-country findings.
        condition.log_index = self.log.append_record(
            TransferConditionRecord(
                chip_id=chip_id,
                allowed_countries=tuple(sorted(parse_countries(condition.allowed_countries))),
                effective_from=condition.effective_from,
                declared_by=caller.name,
                declared_role=caller.role.value,
                created_at=now,
            ),
            now,
        )
        self.repo.add(condition)
        return condition

    def conditions(self, caller: Principal, chip_id: str) -> list[TransferCondition]:
        caller.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER, Role.VENDOR)
        chip = self._chip(chip_id)
        if caller.role is Role.VENDOR:
            caller.require_vendor(chip.vendor_id)
        else:
            caller.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER)
        return self.repo.conditions(chip_id)

    # -- cluster budgets and notifications -----------------------------------------------
    def _cluster(self, caller: Principal, cluster_id: int, *, write: bool) -> DeclaredCluster:
        # Authorised by role before the lookup, by ownership after it.
        if write:
            caller.require(Role.ADMIN, Role.OPERATOR)
        else:
            caller.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER, Role.OPERATOR)
        cluster = self.facilities.cluster(cluster_id)
        if cluster is None:
            raise NotFound(f"no declared cluster {cluster_id}", code="unknown_cluster")
        if write or caller.role is Role.OPERATOR:
            caller.require_operator(cluster.operator_id)
        else:
            caller.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER)
        return cluster

    def set_budget(
        self, caller: Principal, *, cluster_id: int, compute_budget_flop: float
    ) -> ClusterBudget:
        """Declare (or revise) the total compute a cluster's run may use."""
        cluster = self._cluster(caller, cluster_id, write=True)
        now = self.clock()
        index = self.log.append_record(
            ClusterBudgetRecord(
                cluster_id=cluster_id,
                operator_id=cluster.operator_id,
                compute_budget_flop=compute_budget_flop,
                declared_by=caller.name,
                declared_at=now,
            ),
            now,
        )
        self.repo.add(
            ClusterBudgetRevision(
                cluster_id=cluster_id,
                compute_budget_flop=compute_budget_flop,
                declared_by=caller.name,
                declared_at=now,
                log_index=index,
            )
        )
        budget = self.repo.budget(cluster_id)
        if budget is None:
            budget = ClusterBudget(
                cluster_id=cluster_id,
                compute_budget_flop=compute_budget_flop,
                declared_at=now,
                log_index=index,
            )
            self.repo.add(budget)
        else:
            budget.compute_budget_flop = compute_budget_flop
            budget.declared_at = now
            budget.log_index = index
        return budget

    def notify(
        self,
        caller: Principal,
        *,
        cluster_id: int,
        threshold_flop: float,
        notified_at: datetime | None = None,
        note: str = "",
    ) -> ClusterNotification:
        """Record the operator's notice that the cluster's run crossed ``threshold_flop``.

        ``notified_at`` is the operator's statement of when it gave notice (it may predate the
        filing, e.g. notice by another channel) and may not lie in the future. The verifier
        judges a notification by ``created_at``, the time the registry received it, so a notice
        filed late cannot be backdated past a threshold finding.
        """
        cluster = self._cluster(caller, cluster_id, write=True)
        now = self.clock()
        if notified_at is not None and notified_at > now:
            raise InvalidRequest(
                f"notified_at {notified_at.isoformat()} is in the future",
                code="notification_in_future",
            )
        notification = ClusterNotification(
            cluster_id=cluster_id,
            threshold_flop=threshold_flop,
            notified_at=notified_at or now,
            note=note,
            declared_by=caller.name,
            created_at=now,
        )
        notification.log_index = self.log.append_record(
            ClusterNotificationRecord(
                cluster_id=cluster_id,
                operator_id=cluster.operator_id,
                threshold_flop=threshold_flop,
                notified_at=notification.notified_at,
                note=note,
                declared_by=caller.name,
                created_at=now,
            ),
            now,
        )
        self.repo.add(notification)
        return notification

    def budget_and_notifications(
        self, caller: Principal, cluster_id: int
    ) -> tuple[ClusterBudget | None, list[ClusterNotification]]:
        self._cluster(caller, cluster_id, write=False)
        return self.repo.budget(cluster_id), self.repo.notifications(cluster_id)
