"""Landmarks and meters (admin), landmark challenges, RTT measurements and meter readings.

The OpenAPI tag stays ``channels``: generated clients name their API classes after it."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlalchemy.orm import Session

from registry.api.body import StrictJsonRoute
from registry.api.context import AppContext
from registry.api.deps import CallerDep, ContextDep, LogDep, SessionDep
from registry.api.schemas.common import Id
from registry.api.schemas.landmarks_meters import (
    ChallengeCreate,
    ChallengePublic,
    LandmarkCreate,
    LandmarkPublic,
    LoggedPublic,
    MeterCreate,
    MeterPublic,
)
from registry.auth import Role
from registry.services.landmarks_meters import LandmarksMetersService
from registry.services.log import TransparencyLog

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["channels"])
_READERS = (Role.ADMIN, Role.INSPECTOR, Role.PARTNER)


def _service(
    session: Session, ctx: AppContext, log: TransparencyLog | None = None
) -> LandmarksMetersService:
    return LandmarksMetersService(
        session,
        ctx.clock,
        log=log,
        challenge_ttl=timedelta(seconds=ctx.settings.challenge_ttl_s),
        max_skew=timedelta(seconds=ctx.settings.max_clock_skew_s),
    )


@router.post("/landmarks", status_code=201, response_model=LandmarkPublic)
def register_landmark(
    body: LandmarkCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return _service(session, ctx).register_landmark(caller, **body.model_dump())


@router.get("/landmarks", response_model=list[LandmarkPublic])
def list_landmarks(caller: CallerDep, session: SessionDep, ctx: ContextDep) -> object:
    caller.require(*_READERS, Role.LANDMARK)
    return _service(session, ctx).repo.landmarks()


@router.post("/meters", status_code=201, response_model=MeterPublic)
def register_meter(
    body: MeterCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return _service(session, ctx).register_meter(caller, **body.model_dump())


@router.get("/meters", response_model=list[MeterPublic])
def list_meters(caller: CallerDep, session: SessionDep, ctx: ContextDep) -> object:
    caller.require(*_READERS, Role.METER)
    return _service(session, ctx).repo.meters()


@router.post("/landmarks/{landmark_id}/challenges", status_code=201, response_model=ChallengePublic)
def issue_challenge(
    landmark_id: Id, body: ChallengeCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """A fresh nonce for this landmark to send to the chip (through its agent)."""
    return _service(session, ctx).issue_challenge(
        caller, landmark_id=landmark_id, chip_id=body.chip_id
    )


@router.post("/landmark-measurements", status_code=201, response_model=LoggedPublic)
def post_measurement(
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
    log: LogDep,
    envelope: Annotated[dict[str, Any], Body(description="DSSE landmark measurement envelope")],
) -> LoggedPublic:
    done = _service(session, ctx, log).ingest_measurement(caller, envelope)
    return LoggedPublic(id=done.id, digest=done.digest, log_index=done.log_index)


@router.post("/meter-readings", status_code=201, response_model=LoggedPublic)
def post_reading(
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
    log: LogDep,
    envelope: Annotated[dict[str, Any], Body(description="DSSE meter reading envelope")],
) -> LoggedPublic:
    done = _service(session, ctx, log).ingest_reading(caller, envelope)
    return LoggedPublic(id=done.id, digest=done.digest, log_index=done.log_index)
