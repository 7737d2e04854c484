"""A chip's end of service (decommission, revocation) and custody transfers between operators."""

from __future__ import annotations

from fastapi import APIRouter

from attestation.dsse import Envelope
from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.routes.queries import ChipIdPath
from registry.api.schemas.custody import ChipStatusChange
from registry.api.schemas.declarations import ChipPublic, InstallationPublic, SignedDeclaration
from registry.errors import reported_as
from registry.services.chipstatus import ChipStatusService
from registry.services.transfers import TransferService

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["custody"])


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


@router.post("/transfers", status_code=201, response_model=InstallationPublic)
def transfer_chip(
    body: SignedDeclaration, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """Pass a chip's custody from one operator to another.

    The body is one DSSE envelope whose payload is ``{"type":
    "chipreg.dev/declaration/transfer/v1", "chip_id", "from_facility_id", "to_facility_id",
    "transferred_at"}``, signed by BOTH the giving operator's key (of ``from_facility_id``) and
    the receiving operator's (of ``to_facility_id``). Posted by either operator or an admin;
    answered with the chip's new installation; logged as kind ``transfer``.
    """
    with reported_as("malformed_declaration"):
        envelope = Envelope.from_dict(body.model_dump())
    return TransferService(
        session, ctx.clock, max_clock_skew_s=ctx.settings.max_clock_skew_s
    ).transfer(caller, envelope)
