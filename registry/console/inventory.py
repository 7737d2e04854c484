"""The console's inventory pages: chips, facilities and clusters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from registry.api.deps import ContextDep, SessionDep
from registry.api.routes.queries import ChipIdPath
from registry.api.schemas.common import Count, Id
from registry.console.base import (
    PAGE,
    LiveDep,
    _csv,
    _detail,
    _hhmm,
    _page,
    _when,
    router,
)
from registry.console.charts import Series, line_chart
from registry.errors import Forbidden
from registry.services.conditions_budgets import ConditionsBudgetsService
from registry.services.inventory import InventoryService
from registry.services.queries import QueryService

# -- chips -------------------------------------------------------------------------------


@router.get("/chips")
def chips(
    *,
    request: Request,
    live: LiveDep,
    session: SessionDep,
    ctx: ContextDep,
    country: Annotated[str | None, Query(pattern=r"^([A-Z]{2}|)$")] = None,
    model: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")] = None,
    facility_id: Annotated[str | None, Query(pattern=r"^[0-9]{0,9}$")] = None,
    after: Annotated[str | None, Query(pattern=r"^([A-Za-z0-9][A-Za-z0-9._:-]{0,63}|)$")] = None,
    offset: Annotated[Count, Query()] = 0,
) -> Response:
    _detail(live, ctx)
    page = InventoryService(session, ctx.clock).chips(
        live.principal,
        country=country or None,
        model=model or None,
        facility_id=int(facility_id) if facility_id else None,
        after=after or None,
        limit=PAGE + 1,  # one more: is there a next page?
        offset=offset,
    )
    rows = page.rows[:PAGE]
    return _page(
        request,
        live,
        "chips.html",
        page=page,
        rows=rows,
        # The next page starts after this page's last chip (keyset: no walk over the
        # skipped rows, however deep the page).
        next_after=rows[-1].chip.chip_id if len(page.rows) > PAGE else None,
        q={"country": country or "", "model": model or "", "facility_id": facility_id or ""},
    )


@router.get("/chips/{chip_id}")
def chip(
    request: Request, chip_id: ChipIdPath, live: LiveDep, session: SessionDep, ctx: ContextDep
) -> Response:
    _detail(live, ctx)
    queries = QueryService(session)
    view = queries.chip(live.principal, chip_id, reports=10)
    _, series = InventoryService(session, ctx.clock).chip_series(live.principal, chip_id)
    try:
        conditions = ConditionsBudgetsService(session, ctx.clock).conditions(
            live.principal, chip_id
        )
    except Forbidden:
        conditions = None
    labels = [_hhmm(r.window_start) for r in series]
    util = line_chart(
        "Utilisation", labels, [Series("utilisation", [r.utilization * 100 for r in series])], "%"
    )
    energy = line_chart(
        "Energy per window", labels, [Series("energy", [r.energy_j / 1e6 for r in series])], "MJ"
    )
    return _page(
        request,
        live,
        "chip.html",
        view=view,
        series=series,
        util_chart=util,
        energy_chart=energy,
        conditions=conditions,
        locations=InventoryService(session, ctx.clock).locations(live.principal, chip_id),
        findings=queries.findings(live.principal, about_chip=chip_id, limit=50),
    )


@router.get("/chips/{chip_id}/series.csv")
def chip_csv(chip_id: ChipIdPath, live: LiveDep, session: SessionDep, ctx: ContextDep) -> Response:
    _detail(live, ctx)
    _, series = InventoryService(session, ctx.clock).chip_series(live.principal, chip_id)
    return _csv(
        f"{chip_id}-series.csv",
        ["seq", "window_start", "window_end", "utilization", "energy_j", "log_index"],
        [
            [
                r.seq,
                _when(r.window_start),
                _when(r.window_end),
                r.utilization,
                r.energy_j,
                r.log_index,
            ]
            for r in series
        ],
    )


# -- facilities and clusters ---------------------------------------------------------------


@router.get("/facilities")
def facilities(request: Request, live: LiveDep, session: SessionDep, ctx: ContextDep) -> Response:
    per_facility, per_country = InventoryService(session, ctx.clock).aggregates(live.principal)
    return _page(request, live, "facilities.html", facilities=per_facility, countries=per_country)


@router.get("/facilities/{facility_id}")
def facility(
    request: Request, facility_id: Id, live: LiveDep, session: SessionDep, ctx: ContextDep
) -> Response:
    facility = QueryService(session).readable_facility(live.principal, facility_id)
    inventory = InventoryService(session, ctx.clock)
    try:
        _detail(live, ctx)
    except Forbidden:
        chips = None  # partners limited to aggregates see no per-chip rows
    else:
        # One page of the chips, with their number: a campus holds tens of thousands.
        chips = inventory.chips(live.principal, facility_id=facility_id, limit=PAGE)
    balance = inventory.power_balance(live.principal, facility_id)
    clusters = inventory.clusters(live.principal, facility_id=facility_id, limit=100)
    labels = [_hhmm(w.window_start) for w in balance.windows]
    chart = line_chart(
        "Power balance",
        labels,
        [
            Series("reported x PUE + non-IT", [w.kw(w.expected_j) for w in balance.windows]),
            Series("metered", [w.kw(w.metered_j) for w in balance.windows]),
            Series("declared capacity", [w.kw(w.capacity_j) for w in balance.windows], dashed=True),
        ],
        "kW",
    )
    return _page(
        request,
        live,
        "facility.html",
        f=facility,
        balance=balance,
        chart=chart,
        clusters=clusters,
        chips=chips,
    )


@router.get("/facilities/{facility_id}/power-balance.csv")
def facility_csv(facility_id: Id, live: LiveDep, session: SessionDep, ctx: ContextDep) -> Response:
    balance = InventoryService(session, ctx.clock).power_balance(live.principal, facility_id)
    return _csv(
        f"facility-{facility_id}-power-balance.csv",
        [
            "window_start",
            "window_end",
            "reports",
            "reported_chip_energy_j",
            "non_it_load_j",
            "expected_j",
            "metered_j",
            "capacity_j",
        ],
        [
            [
                _when(w.window_start),
                _when(w.window_end),
                w.reports,
                w.reported_chip_energy_j,
                w.non_it_load_j,
                w.expected_j,
                "" if w.metered_j is None else w.metered_j,
                w.capacity_j,
            ]
            for w in balance.windows
        ],
    )


@router.get("/clusters/{cluster_id}")
def cluster(
    request: Request, cluster_id: Id, live: LiveDep, session: SessionDep, ctx: ContextDep
) -> Response:
    declared, operator = InventoryService(session, ctx.clock).cluster(live.principal, cluster_id)
    try:
        budget, notes = ConditionsBudgetsService(session, ctx.clock).budget_and_notifications(
            live.principal, cluster_id
        )
    except Forbidden:
        budget, notes = None, []
    compute = InventoryService(session, ctx.clock).cluster_compute(live.principal, cluster_id)
    labels = [_hhmm(w.window_start) for w, _ in compute]
    lines = [Series("used (FLOP)", [total for _, total in compute])]
    if budget is not None:
        lines.append(
            Series("declared budget", [budget.compute_budget_flop] * len(compute), dashed=True)
        )
    lines += [
        Series(f"threshold {n.threshold_flop:.2g}", [n.threshold_flop] * len(compute), dashed=True)
        for n in notes
    ]
    chart = line_chart("Compute used, cumulative", labels, lines, "FLOP")
    return _page(
        request,
        live,
        "cluster.html",
        compute=compute,
        chart=chart,
        c=declared,
        operator=operator,
        budget=budget,
        notifications=notes,
        members=sorted(m.chip_id for m in declared.members),
    )
