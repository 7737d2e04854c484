"""GPU challenges: the fresh nonce GPU evidence must answer (docs/PROTOCOL.md)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy.orm import Session

from attestation.gpu import ENROLLMENT_BINDING, REATTESTATION_BINDING, bind_spdm_nonce
from attestation.keys import PublicKey
from registry.api.body import StrictJsonRoute
from registry.api.context import AppContext
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.routes.queries import ChipIdPath
from registry.api.schemas.declarations import GpuEvidenceIn
from registry.api.schemas.gpu import GpuChallengeCreate, GpuChallengePublic, ReattestationPublic
from registry.db.models import GpuChallenge
from registry.services.gpu_attestation import (
    PURPOSE_ENROLLMENT,
    GpuAttestationService,
    SubmittedEvidence,
)

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["gpu"])


def gpu_service(session: Session, ctx: AppContext) -> GpuAttestationService:
    return GpuAttestationService(
        session,
        ctx.clock,
        ctx.gpu_roots,
        challenge_ttl=timedelta(seconds=ctx.settings.gpu_challenge_ttl_s),
    )


def _public(challenge: GpuChallenge) -> GpuChallengePublic:
    key = PublicKey(bytes(challenge.chip_public_key))
    binding = (
        ENROLLMENT_BINDING if challenge.purpose == PURPOSE_ENROLLMENT else REATTESTATION_BINDING
    )
    spdm = bind_spdm_nonce(binding, key.raw, bytes.fromhex(challenge.nonce))
    return GpuChallengePublic(
        nonce=challenge.nonce,
        purpose=challenge.purpose,
        chip_public_key=key.to_b64(),
        spdm_nonce=spdm.hex(),
        issued_at=challenge.issued_at,
        expires_at=challenge.expires_at,
    )


@router.post("/gpu/challenges", status_code=201, response_model=GpuChallengePublic)
def issue_gpu_challenge(
    body: GpuChallengeCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """A fresh nonce for enrolling ``chip_public_key`` with GPU evidence (vendors, admins)."""
    return _public(
        gpu_service(session, ctx).issue_enrollment_challenge(
            caller, chip_public_key=body.chip_public_key
        )
    )


@router.post("/chips/{chip_id}/gpu-challenges", status_code=201, response_model=GpuChallengePublic)
def issue_reattestation_challenge(
    chip_id: ChipIdPath, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """A fresh nonce the chip's agent must answer with evidence from its GPU (admin, inspector)."""
    return _public(gpu_service(session, ctx).issue_reattestation_challenge(caller, chip_id=chip_id))


@router.get("/chips/{chip_id}/gpu-challenges", response_model=list[GpuChallengePublic])
def open_reattestation_challenges(
    chip_id: ChipIdPath, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """Open re-attestation challenges of the chip, for its agent (the custodian, admins)."""
    return [_public(c) for c in gpu_service(session, ctx).open_challenges(caller, chip_id=chip_id)]


@router.post("/chips/{chip_id}/gpu-evidence", status_code=201, response_model=ReattestationPublic)
def submit_reattestation(
    chip_id: ChipIdPath,
    body: GpuEvidenceIn,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> object:
    """The agent's answer to a re-attestation challenge (the custodian operator, admins)."""
    evidence = SubmittedEvidence.from_wire(body.nonce, body.report, body.certificates)
    index, claims, same = gpu_service(session, ctx).reattest(
        caller, chip_id=chip_id, evidence=evidence
    )
    return ReattestationPublic(log_index=index, hardware_id=claims.hardware_id, same_device=same)
