"""Findings lifecycle (acknowledge, resolve, reopen; audit trail) and webhook subscriptions."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.schemas.common import Id
from registry.api.schemas.lifecycle import (
    DeliveryPublic,
    TransitionCreate,
    TransitionPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)
from registry.api.schemas.queries import FindingPublic
from registry.services.findings import FindingLifecycle
from registry.services.webhooks import WebhookService

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1")


@router.post("/findings/{finding_id}/transitions", response_model=FindingPublic, tags=["findings"])
def transition_finding(
    finding_id: Id,
    body: TransitionCreate,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> FindingPublic:
    """Move a finding to ``to``; recorded in its audit trail with the caller and the note."""
    finding, _ = FindingLifecycle(session, ctx.clock).transition(
        caller, finding_id, to=body.to, note=body.note
    )
    return FindingPublic.from_row(finding)


@router.get(
    "/findings/{finding_id}/transitions",
    response_model=list[TransitionPublic],
    tags=["findings"],
)
def finding_history(
    finding_id: Id, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return FindingLifecycle(session, ctx.clock).history(caller, finding_id)


@router.post("/webhooks", status_code=201, response_model=WebhookCreated, tags=["webhooks"])
def create_webhook(
    body: WebhookCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """Subscribe a receiver; the answer carries the ``whsec_`` signing secret (shown once)."""
    return WebhookService(session, ctx.clock).create(
        caller,
        name=body.name,
        url=str(body.url),
        secret=body.secret,
        min_severity=body.min_severity,
    )


@router.get("/webhooks", response_model=list[WebhookPublic], tags=["webhooks"])
def list_webhooks(caller: CallerDep, session: SessionDep, ctx: ContextDep) -> object:
    return WebhookService(session, ctx.clock).subscriptions(caller)


@router.get(
    "/webhooks/{webhook_id}/deliveries", response_model=list[DeliveryPublic], tags=["webhooks"]
)
def list_deliveries(
    webhook_id: Id, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return WebhookService(session, ctx.clock).deliveries(caller, webhook_id)
