"""The inventory read API: chips and clusters by filter (paginated, with a total), a chip's
time series, a facility's power balance, and any log entry decoded."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from sqlalchemy import Row

from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, DetailCallerDep, LogDep, SessionDep
from registry.api.routes.queries import ChipIdPath
from registry.api.schemas.common import Count, Id, UtcDatetime
from registry.api.schemas.inventory import (
    AccessPage,
    AccessPublic,
    AggregatesPublic,
    BalanceWindowPublic,
    ChipListItem,
    ChipSeries,
    ChipsPage,
    ClusterListItem,
    ClustersPage,
    CountryAggregatePublic,
    DecodedEntryPublic,
    ExportPublic,
    FacilityAggregatePublic,
    PowerBalancePublic,
    SeriesPoint,
    SignerPublic,
)
from registry.api.schemas.queries import FindingPublic
from registry.errors import NotFound
from registry.services.access import AccessLog, require_detail
from registry.services.entries import DecodedEntry, EntryDecoder
from registry.services.exports import ExportService
from registry.services.inventory import ClustersPage as ClustersView
from registry.services.inventory import InventoryService, PowerBalance

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1")

Country = Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[Count, Query()]


@router.get("/chips", response_model=ChipsPage, tags=["inventory"])
def list_chips(
    *,
    caller: DetailCallerDep,
    session: SessionDep,
    ctx: ContextDep,
    country: Country = None,
    facility_id: Annotated[Id | None, Query()] = None,
    operator_id: Annotated[Id | None, Query()] = None,
    model: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")] = None,
    status: Annotated[str | None, Query(pattern=r"^(installed|uninstalled)$")] = None,
    after: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    """Enrolled chips with where they are now, filtered; ``total`` counts every match.
    ``after``: only chips whose id sorts after it (pass a page's last ``chip_id`` to get the
    next page; cheaper than a large ``offset``)."""
    rows, total = InventoryService(session, ctx.clock).chip_list(
        caller,
        country=country,
        facility_id=facility_id,
        operator_id=operator_id,
        model=model,
        status=status,
        after=after,
        limit=limit,
        offset=offset,
    )
    return Response(chips_page_body(rows, total, limit, offset), media_type="application/json")


_CHIP_FIELDS = tuple(ChipListItem.model_fields)


def chips_page_body(rows: Sequence[Row[Any]], total: int, limit: int, offset: int) -> bytes:
    """The ``ChipsPage`` document, byte for byte what its model renders (the model's field
    order; a test holds the two identical), from the rows' columns by orjson: a 100-chip
    page without a model object per chip."""
    chips = []
    for row in rows:
        values = row._mapping
        chips.append({name: values[name] for name in _CHIP_FIELDS})
    page = {"total": total, "limit": limit, "offset": offset, "chips": chips}
    return orjson.dumps(page, option=orjson.OPT_UTC_Z)


def cluster_items(page: ClustersView) -> list[ClusterListItem]:
    return [
        ClusterListItem(
            id=c.id,
            name=c.name,
            purpose=c.purpose,
            operator_id=c.operator_id,
            operator_name=page.operator_names[c.operator_id],
            facility_id=c.facility_id,
            facility_name=f.name,
            country=f.country,
            start=c.start,
            end=c.end,
            chip_count=len(c.members),
            chip_ids=sorted(m.chip_id for m in c.members),
        )
        for c, f in page.clusters
    ]


@router.get("/clusters", response_model=ClustersPage, tags=["inventory"])
def list_clusters(
    *,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
    country: Country = None,
    facility_id: Annotated[Id | None, Query()] = None,
    operator_id: Annotated[Id | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> ClustersPage:
    """Declared clusters with their members, filtered; ``total`` counts every match."""
    page = InventoryService(session, ctx.clock).clusters(
        caller,
        country=country,
        facility_id=facility_id,
        operator_id=operator_id,
        limit=limit,
        offset=offset,
    )
    return ClustersPage(total=page.total, limit=limit, offset=offset, clusters=cluster_items(page))


@router.get("/findings/{finding_id}", response_model=FindingPublic, tags=["queries"])
def get_finding(
    finding_id: Id, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> FindingPublic:
    """One finding, as in ``GET /v1/findings`` (operators: about their own facilities)."""
    return FindingPublic.from_row(InventoryService(session, ctx.clock).finding(caller, finding_id))


@router.get("/chips/{chip_id}/series", response_model=ChipSeries, tags=["inventory"])
def chip_series(
    *,
    chip_id: ChipIdPath,
    caller: DetailCallerDep,
    session: SessionDep,
    ctx: ContextDep,
    start: Annotated[UtcDatetime | None, Query()] = None,
    end: Annotated[UtcDatetime | None, Query()] = None,
    limit: Limit = 96,
) -> ChipSeries:
    """The chip's utilisation and energy per reported window (the newest ``limit``)."""
    chip, reports = InventoryService(session, ctx.clock).chip_series(
        caller, chip_id, start=start, end=end, limit=limit
    )
    return ChipSeries(
        chip_id=chip.chip_id,
        points=[
            SeriesPoint(
                seq=r.seq,
                window_start=r.window_start,
                window_end=r.window_end,
                utilization=r.utilization,
                energy_j=r.energy_j,
                log_index=r.log_index,
            )
            for r in reports
        ],
    )


def balance_public(balance: PowerBalance) -> PowerBalancePublic:
    f = balance.facility
    return PowerBalancePublic(
        facility_id=f.id,
        facility_name=f.name,
        operator_name=f.operator.name,
        declared_power_kw=f.declared_power_kw,
        pue=f.pue,
        non_it_load_kw=f.non_it_load_kw,
        windows=[
            BalanceWindowPublic(
                window_start=w.window_start,
                window_end=w.window_end,
                reports=w.reports,
                reported_chip_energy_j=w.reported_chip_energy_j,
                non_it_load_j=w.non_it_load_j,
                expected_j=w.expected_j,
                metered_j=w.metered_j,
                capacity_j=w.capacity_j,
            )
            for w in balance.windows
        ],
    )


@router.get(
    "/facilities/{facility_id}/power-balance", response_model=PowerBalancePublic, tags=["inventory"]
)
def power_balance(
    *,
    facility_id: Id,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
    start: Annotated[UtcDatetime | None, Query()] = None,
    end: Annotated[UtcDatetime | None, Query()] = None,
) -> PowerBalancePublic:
    """Per window: the declared chips' reported energy x PUE + the declared non-IT load, the
    meters' readings, and the declared capacity (all in joules over the window)."""
    return balance_public(
        InventoryService(session, ctx.clock).power_balance(
            caller, facility_id, start=start, end=end
        )
    )


def decoded_public(entry: DecodedEntry) -> DecodedEntryPublic:
    return DecodedEntryPublic(
        index=entry.index,
        kind=entry.kind,
        leaf_hash=base64.b64encode(entry.leaf_hash).decode(),
        created_at=entry.created_at,
        payload_type=entry.payload_type,
        fields=entry.fields,
        signers=[SignerPublic(**asdict(s)) for s in entry.signers],
        error=entry.error,
    )


@router.get("/log/entries/{index}/decoded", response_model=DecodedEntryPublic, tags=["log"])
def decoded_entry(index: Count, log: LogDep, session: SessionDep) -> object:
    """One log entry made readable: envelope opened, payload parsed, signers matched to their
    registered keys and checked. Public, like the log; the raw bytes remain the evidence."""
    found = log.entries(index, index + 1)
    if not found:
        raise NotFound(f"no log entry {index}", code="unknown_entry")
    return decoded_public(EntryDecoder(session).decode(found[0]))


@router.get("/access-log", response_model=AccessPage, tags=["accounts"])
def access_log(
    *,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
    token_id: Annotated[Id | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> AccessPage:
    """Who looked at what (admins only): every inspector's and partner's read of non-public
    data over the API or the console, newest first: who, when, which path and query."""
    rows, total = AccessLog(session, ctx.clock).list(
        caller, token_id=token_id, limit=limit, offset=offset
    )
    return AccessPage(
        total=total,
        limit=limit,
        offset=offset,
        accesses=[AccessPublic.model_validate(r) for r in rows],
    )


@router.get("/inventory/aggregates", response_model=AggregatesPublic, tags=["inventory"])
def aggregates(
    caller: CallerDep, session: SessionDep, ctx: ContextDep, country: Country = None
) -> AggregatesPublic:
    """Chips installed and their peak compute per facility and per country (what partners
    limited to aggregates read; operators get their own facilities)."""
    facilities, countries = InventoryService(session, ctx.clock).aggregates(caller, country=country)
    return AggregatesPublic(
        facilities=[
            FacilityAggregatePublic(
                facility_id=a.facility.id,
                facility_name=a.facility.name,
                operator_name=a.facility.operator.name,
                country=a.facility.country,
                declared_power_kw=a.facility.declared_power_kw,
                chips=a.chips,
                peak_tflops_bf16=a.peak_tflops_bf16,
            )
            for a in facilities
        ],
        countries=[
            CountryAggregatePublic(
                country=c.country,
                facilities=c.facilities,
                chips=c.chips,
                peak_tflops_bf16=c.peak_tflops_bf16,
            )
            for c in countries
        ],
    )


@router.get("/exports/{kind}", response_model=ExportPublic, tags=["exports"])
def export(
    *,
    kind: Annotated[str, Path(pattern=r"^(inventory|findings)$")],
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
    log: LogDep,
    format: Annotated[str, Query(pattern=r"^(csv|json)$")] = "csv",
) -> ExportPublic:
    """A signed report: ``content`` (the CSV or JSON file, exact text) and ``signature`` (its
    detached signature by the log key, naming the checkpoint it was cut at). Save them as
    FILE and FILE.sig; ``chipreg audit --export FILE --log-vkey ...`` verifies them."""
    if kind == "inventory":
        require_detail(caller, partner_aggregates_only=ctx.settings.partner_aggregates_only)
    made = ExportService(session, log.signer, ctx.clock).export(caller, kind, format)
    return ExportPublic(
        kind=made.kind,
        format=made.fmt,
        filename=made.filename,
        media_type=made.media_type,
        checkpoint_size=made.checkpoint_size,
        content=made.content.decode(),
        signature=made.signature.decode(),
    )
