"""GPU challenges: the fresh nonce GPU evidence must answer (docs/PROTOCOL.md)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy.orm import Session

from attestation.gpu import ENROLLMENT_BINDING, bind_spdm_nonce
from attestation.keys import PublicKey
from registry.api.context import AppContext
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.schemas.gpu import GpuChallengeCreate, GpuChallengePublic
from registry.services.gpu_attestation import GpuAttestationService

router = APIRouter(prefix="/v1", tags=["gpu"])


def gpu_service(session: Session, ctx: AppContext) -> GpuAttestationService:
    return GpuAttestationService(
        session,
        ctx.clock,
        ctx.gpu_roots,
        challenge_ttl=timedelta(seconds=ctx.settings.gpu_challenge_ttl_s),
    )


@router.post("/gpu/challenges", status_code=201, response_model=GpuChallengePublic)
def issue_gpu_challenge(
    body: GpuChallengeCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """A fresh nonce for enrolling ``chip_public_key`` with GPU evidence (vendors, admins)."""
    challenge = gpu_service(session, ctx).issue_enrollment_challenge(
        caller, chip_public_key=body.chip_public_key
    )
    key = PublicKey(bytes(challenge.chip_public_key))
    spdm = bind_spdm_nonce(ENROLLMENT_BINDING, key.raw, bytes.fromhex(challenge.nonce))
    return GpuChallengePublic(
        nonce=challenge.nonce,
        purpose=challenge.purpose,
        chip_public_key=key.to_b64(),
        spdm_nonce=spdm.hex(),
        issued_at=challenge.issued_at,
        expires_at=challenge.expires_at,
    )
