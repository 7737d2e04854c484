"""Chips' transfer conditions; declared clusters' compute budgets and threshold notifications.

The OpenAPI tag (``obligations``) and ``GET /v1/clusters/{id}/obligations`` keep their names:
they are part of the published API."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.routes.queries import ChipIdPath
from registry.api.schemas.common import Id
from registry.api.schemas.conditions_budgets import (
    BudgetPublic,
    BudgetSet,
    ClusterObligations,
    ConditionCreate,
    ConditionPublic,
    NotificationCreate,
    NotificationPublic,
)
from registry.db.models import TransferCondition
from registry.services.conditions_budgets import ConditionsBudgetsService, parse_countries

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["obligations"])


def _condition(c: TransferCondition) -> ConditionPublic:
    return ConditionPublic(
        id=c.id,
        chip_id=c.chip_id,
        allowed_countries=sorted(parse_countries(c.allowed_countries)),
        effective_from=c.effective_from,
        declared_by=c.declared_by,
        declared_role=c.declared_role,
        created_at=c.created_at,
    )


@router.post(
    "/chips/{chip_id}/transfer-conditions", status_code=201, response_model=ConditionPublic
)
def add_condition(
    chip_id: ChipIdPath,
    body: ConditionCreate,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> ConditionPublic:
    """Where the chip may be, from ``effective_from``; conditions accumulate (intersect)."""
    c = ConditionsBudgetsService(session, ctx.clock).add_condition(
        caller, chip_id=chip_id, **body.model_dump()
    )
    return _condition(c)


@router.get("/chips/{chip_id}/transfer-conditions", response_model=list[ConditionPublic])
def list_conditions(
    chip_id: ChipIdPath, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> list[ConditionPublic]:
    return [
        _condition(c)
        for c in ConditionsBudgetsService(session, ctx.clock).conditions(caller, chip_id)
    ]


@router.put("/clusters/{cluster_id}/budget", response_model=BudgetPublic)
def set_budget(
    cluster_id: Id, body: BudgetSet, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return ConditionsBudgetsService(session, ctx.clock).set_budget(
        caller, cluster_id=cluster_id, compute_budget_flop=body.compute_budget_flop
    )


@router.post(
    "/clusters/{cluster_id}/notifications", status_code=201, response_model=NotificationPublic
)
def notify_threshold(
    cluster_id: Id,
    body: NotificationCreate,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> object:
    return ConditionsBudgetsService(session, ctx.clock).notify(
        caller, cluster_id=cluster_id, **body.model_dump()
    )


@router.get("/clusters/{cluster_id}/obligations", response_model=ClusterObligations)
def cluster_obligations(
    cluster_id: Id, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> ClusterObligations:
    budget, notes = ConditionsBudgetsService(session, ctx.clock).budget_and_notifications(
        caller, cluster_id
    )
    return ClusterObligations(
        cluster_id=cluster_id,
        budget=BudgetPublic.model_validate(budget) if budget else None,
        notifications=[NotificationPublic.model_validate(n) for n in notes],
    )
