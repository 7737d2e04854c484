"""Inspector queries: chips, facilities and findings."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query

from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, DetailCallerDep, SessionDep
from registry.api.schemas.common import Count, Id
from registry.api.schemas.declarations import ChipPublic, FacilityPublic, InstallationPublic
from registry.api.schemas.queries import (
    ChipDetail,
    FacilityDetail,
    FindingPublic,
    FindingsPage,
    ReportSummary,
)
from registry.services.inventory import InventoryService
from registry.services.queries import QueryService

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["queries"])

ChipIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


@router.get("/chips/{chip_id}", response_model=ChipDetail)
def get_chip(
    chip_id: ChipIdPath,
    caller: DetailCallerDep,
    session: SessionDep,
    reports: Annotated[int, Query(ge=0, le=100)] = 10,
) -> ChipDetail:
    view = QueryService(session).chip(caller, chip_id, reports=reports)
    return ChipDetail(
        chip=ChipPublic.model_validate(view.chip),
        vendor=view.chip.vendor.name,
        current_installation=InstallationPublic.model_validate(view.current)
        if view.current
        else None,
        facility=FacilityPublic.model_validate(view.current.facility) if view.current else None,
        custody=[InstallationPublic.model_validate(i) for i in view.custody],
        latest_reports=[
            ReportSummary(
                seq=r.seq,
                digest=r.digest,
                window_start=r.window_start,
                window_end=r.window_end,
                utilization=r.utilization,
                energy_j=r.energy_j,
                peers=len(json.loads(r.links_json)),
                log_index=r.log_index,
            )
            for r in view.latest_reports
        ],
    )


@router.get("/facilities", response_model=list[FacilityPublic])
def list_facilities(
    caller: CallerDep,
    session: SessionDep,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
) -> object:
    return QueryService(session).list_facilities(caller, country=country)


@router.get("/facilities/{facility_id}", response_model=FacilityDetail)
def get_facility(
    *,
    facility_id: Id,
    caller: DetailCallerDep,
    session: SessionDep,
    ctx: ContextDep,
    after: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FacilityDetail:
    """The facility with its number of chips and their total peak, and one page of its chips
    (keyset: ``after`` a page's ``next_after``): a campus holds tens of thousands."""
    view = InventoryService(session, ctx.clock).facility(
        caller, facility_id, after=after, limit=limit
    )
    return FacilityDetail(
        facility=FacilityPublic.model_validate(view.facility),
        operator=view.facility.operator.name,
        chip_count=view.chip_count,
        peak_tflops_bf16_total=view.peak_tflops_bf16,
        limit=limit,
        chips=[ChipPublic.model_validate(c) for c in view.chips],
        next_after=view.next_after,
    )


@router.get("/findings", response_model=FindingsPage)
def list_findings(
    *,
    caller: CallerDep,
    session: SessionDep,
    facility_id: Id | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    kind: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
    severity: Annotated[str | None, Query(pattern=r"^(low|medium|high|critical)$")] = None,
    status: Annotated[str | None, Query(pattern=r"^(open|acknowledged|resolved)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[Count, Query()] = 0,
) -> FindingsPage:
    found = QueryService(session).findings(
        caller,
        facility_id=facility_id,
        country=country,
        kind=kind,
        severity=severity,
        status=status,
        limit=limit,
        offset=offset,
    )
    return FindingsPage(findings=[FindingPublic.from_row(f) for f in found])
