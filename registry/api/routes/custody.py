"""A chip's end of service (decommission, revocation) and custody transfers between operators."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.routes.queries import ChipIdPath
from registry.api.schemas.custody import ChipStatusChange
from registry.api.schemas.declarations import ChipPublic
from registry.services.chipstatus import ChipStatusService

router = APIRouter(prefix="/v1", tags=["custody"])


@router.post("/chips/{chip_id}/decommission", response_model=ChipPublic)
def decommission_chip(
    chip_id: ChipIdPath,
    body: ChipStatusChange,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> object:
    """Take a chip out of service for good (admin, or the operator holding it); logged as a
    ``chip_status`` record. Its reports for windows ending later are refused
    (``chip_decommissioned``) and the verifier no longer expects it to report."""
    return ChipStatusService(session, ctx.clock).decommission(caller, chip_id, body.reason)


@router.post("/chips/{chip_id}/revoke", response_model=ChipPublic)
def revoke_chip(
    chip_id: ChipIdPath,
    body: ChipStatusChange,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> object:
    """Stop trusting a chip's key (admin, or the chip's vendor); logged as a ``chip_status``
    record. Every report received later is refused (``chip_revoked``)."""
    return ChipStatusService(session, ctx.clock).revoke(caller, chip_id, body.reason)
