"""The console's findings pages: the list, one finding with its decoded evidence, its lifecycle."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from registry.api.deps import ContextDep, SessionDep
from registry.api.schemas.common import Count, Id, request_time
from registry.console.base import (
    EVIDENCE_SHOWN,
    PAGE,
    FormDep,
    LiveDep,
    _check_csrf,
    _page,
    router,
)
from registry.errors import BadRequest
from registry.services.entries import EntryDecoder
from registry.services.findings import FindingLifecycle
from registry.services.inventory import InventoryService
from registry.services.log import TransparencyLog
from registry.services.queries import QueryService

# -- findings ----------------------------------------------------------------------------


@router.get("/findings")
def findings(
    *,
    request: Request,
    live: LiveDep,
    session: SessionDep,
    kind: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{0,64}$")] = None,
    severity: Annotated[str | None, Query(pattern=r"^(low|medium|high|critical|)$")] = None,
    status: Annotated[str | None, Query(pattern=r"^(open|acknowledged|resolved|)$")] = None,
    country: Annotated[str | None, Query(pattern=r"^([A-Z]{2}|)$")] = None,
    facility_id: Annotated[str | None, Query(pattern=r"^[0-9]{0,9}$")] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    offset: Annotated[Count, Query()] = 0,
) -> Response:
    filters: dict[str, Any] = {
        "kind": kind or None,
        "severity": severity or None,
        "status": status or None,
        "country": country or None,
        "facility_id": int(facility_id) if facility_id else None,
    }
    if since:
        try:
            filters["since"] = request_time(since)
        except ValueError as exc:
            raise BadRequest(f"since: {exc}", code="bad_query") from exc
    rows = QueryService(session).findings(live.principal, **filters, limit=PAGE + 1, offset=offset)
    return _page(
        request,
        live,
        "findings.html",
        findings=rows[:PAGE],
        more=len(rows) > PAGE,
        offset=offset,
        page=PAGE,
        q={
            "kind": kind or "",
            "severity": severity or "",
            "status": status or "",
            "country": country or "",
            "facility_id": facility_id or "",
            "since": since or "",
        },
    )


@router.get("/findings/{finding_id}")
def finding(
    request: Request, finding_id: Id, live: LiveDep, session: SessionDep, ctx: ContextDep
) -> Response:
    f = InventoryService(session, ctx.clock).finding(live.principal, finding_id)
    log = TransparencyLog(session, ctx.log_signer)
    evidence: list[int] = json.loads(f.evidence_json)
    decoded = EntryDecoder(session).decode_many(evidence[:EVIDENCE_SHOWN])
    trail = FindingLifecycle(session, ctx.clock).history(live.principal, finding_id)
    return _page(
        request,
        live,
        "finding.html",
        f=f,
        details=json.loads(f.details_json),
        evidence=evidence,
        decoded=decoded,
        trail=trail,
        published=log.published(),
    )


@router.post("/findings/{finding_id}/transition")
def transition(
    finding_id: Id, live: LiveDep, form: FormDep, session: SessionDep, ctx: ContextDep
) -> Response:
    _check_csrf(form, live.csrf)
    to = form.get("to", "")
    if to not in ("open", "acknowledged", "resolved"):
        raise BadRequest(f"unknown status {to!r}", code="bad_form")
    FindingLifecycle(session, ctx.clock).transition(
        live.principal, finding_id, to=to, note=form.get("note", "")[:2000]
    )
    return RedirectResponse(f"/console/findings/{finding_id}", status_code=303)
