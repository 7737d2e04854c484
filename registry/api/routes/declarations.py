"""Facilities, chip enrollment, installations and declared clusters."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.schemas.declarations import (
    ChipCreate,
    ChipPublic,
    ClusterCreate,
    ClusterPublic,
    FacilityCreate,
    FacilityPublic,
    InstallationCreate,
    InstallationPublic,
)
from registry.services.enrollment import EnrollmentService

router = APIRouter(prefix="/v1", tags=["declarations"])


@router.post("/facilities", status_code=201, response_model=FacilityPublic)
def create_facility(
    body: FacilityCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return EnrollmentService(session, ctx.clock).create_facility(caller, **body.model_dump())


@router.post("/chips", status_code=201, response_model=ChipPublic)
def enroll_chip(
    body: ChipCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return EnrollmentService(session, ctx.clock).enroll_chip(caller, **body.model_dump())


@router.post("/installations", status_code=201, response_model=InstallationPublic)
def install_chip(
    body: InstallationCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return EnrollmentService(session, ctx.clock).install(caller, **body.model_dump())


@router.post("/clusters", status_code=201, response_model=ClusterPublic)
def declare_cluster(
    body: ClusterCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> ClusterPublic:
    cluster = EnrollmentService(session, ctx.clock).declare_cluster(caller, **body.model_dump())
    return ClusterPublic(
        id=cluster.id,
        operator_id=cluster.operator_id,
        facility_id=cluster.facility_id,
        name=cluster.name,
        purpose=cluster.purpose,
        start=cluster.start,
        end=cluster.end,
        chip_ids=sorted(m.chip_id for m in cluster.members),
    )
