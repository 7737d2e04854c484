"""The console's printable reports and their signed downloads."""

from __future__ import annotations

import io
import zipfile

from fastapi import Request, Response

from registry.api.deps import ContextDep, SessionDep
from registry.auth import Role
from registry.console.base import (
    LiveDep,
    _detail,
    _page,
    router,
)
from registry.errors import Forbidden
from registry.services.exports import ExportService
from registry.services.inventory import InventoryService
from registry.services.log import TransparencyLog
from registry.services.queries import QueryService

# -- reports -----------------------------------------------------------------------------


@router.get("/reports")
def reports(request: Request, live: LiveDep, session: SessionDep, ctx: ContextDep) -> Response:
    """The inventory and findings reports, printable, with their signed downloads."""
    live.principal.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER)
    per_facility, per_country = InventoryService(session, ctx.clock).aggregates(live.principal)
    try:
        _detail(live, ctx)
        detail = True
    except Forbidden:
        detail = False
    return _page(
        request,
        live,
        "reports.html",
        facilities=per_facility,
        countries=per_country,
        findings=QueryService(session).findings(live.principal, limit=1000),
        published=TransparencyLog(session, ctx.log_signer).published(),
        detail=detail,
        now=ctx.clock(),
    )


@router.get("/reports/{kind}.{fmt}.zip")
def report_download(
    kind: str, fmt: str, live: LiveDep, session: SessionDep, ctx: ContextDep
) -> Response:
    """A signed export and its detached signature, together (FILE and FILE.sig in a zip)."""
    if kind == "inventory":
        _detail(live, ctx)
    made = ExportService(session, ctx.log_signer, ctx.clock).export(live.principal, kind, fmt)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(made.filename, made.content)
        z.writestr(made.filename + ".sig", made.signature)
    return Response(
        out.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{made.filename}.zip"'},
    )
