"""The console's pages: server-rendered HTML over the same services (and so the same access
rules) as the API. A session cookie stands for the API token the user logged in with; every
form carries the session's CSRF secret; every page read by an audited role is recorded."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import secrets
import zipfile
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from attestation.errors import ProofError
from attestation.merkle import verify_inclusion
from registry.api.body import StrictJsonRoute
from registry.api.deps import ContextDep, SessionDep
from registry.api.routes.queries import ChipIdPath
from registry.api.schemas.common import INT64_MAX, Count, Id, request_time
from registry.auth import Role
from registry.console.charts import Series, bar_chart, line_chart
from registry.errors import BadRequest, Forbidden, NotFound, as_registry_error
from registry.services.access import AccessLog, require_detail
from registry.services.conditions_budgets import ConditionsBudgetsService
from registry.services.console import ConsoleSessions, LiveSession
from registry.services.entries import DecodedEntry, EntryDecoder
from registry.services.exports import ExportService
from registry.services.findings import FindingLifecycle
from registry.services.inventory import InventoryService
from registry.services.log import TransparencyLog
from registry.services.queries import QueryService

__all__ = ["install_console"]

SESSION_COOKIE = "chipreg_console"
LOGIN_CSRF_COOKIE = "chipreg_login_csrf"
EVIDENCE_SHOWN = 12
PAGE = 50

TEMPLATES = Jinja2Templates(directory=str(files("registry.console") / "templates"))


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def _hhmm(value: datetime) -> str:
    return value.strftime("%m-%d %H:%M")


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["b64"] = lambda b: base64.b64encode(b).decode()
TEMPLATES.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)


class LoginRequired(Exception):
    """No live console session: the user is sent to the login page."""


class ConsoleRoute(StrictJsonRoute):
    """Console errors are pages, not problem documents: a 403 or 404 renders as HTML with the
    same status and code, and a missing session redirects to the login page. Bodies are bounded
    by ``CHIPREG_MAX_REQUEST_BYTES`` like every API body (forms are decoded by :func:`_form`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return RedirectResponse("/console/login", status_code=303)
            except Exception as caught:
                exc = as_registry_error(caught)
                if exc is None:
                    raise
                return TEMPLATES.TemplateResponse(
                    request,
                    "error.html",
                    {"status": exc.status, "code": exc.code, "detail": exc.detail, "me": None},
                    status_code=exc.status,
                )

        return guarded


router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def _sessions(session: SessionDep, ctx: ContextDep) -> ConsoleSessions:
    return ConsoleSessions(
        session, ctx.clock, ttl=timedelta(seconds=ctx.settings.console_session_ttl_s)
    )


SessionsDep = Annotated[ConsoleSessions, Depends(_sessions)]


def _live(
    request: Request, sessions: SessionsDep, session: SessionDep, ctx: ContextDep
) -> LiveSession:
    sid = request.cookies.get(SESSION_COOKIE)
    live = sessions.resume(sid) if sid else None
    if live is None:
        raise LoginRequired
    if request.method == "GET":
        AccessLog(session, ctx.clock).record(
            live.principal, channel="console", path=request.url.path, query=request.url.query
        )
    return live


LiveDep = Annotated[LiveSession, Depends(_live)]


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the console's only form encoding)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise BadRequest("forms must be application/x-www-form-urlencoded", code="bad_form")
    body = await request.body()
    if len(body) > 64 * 1024:
        raise BadRequest("form too large", code="bad_form")
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if any("\x00" in k or "\x00" in v for k, v in form.items()):
        # PostgreSQL cannot store U+0000 in text (as for JSON bodies, registry.api.body).
        raise BadRequest("form fields must not contain U+0000", code="bad_form")
    return form


FormDep = Annotated[dict[str, str], Depends(_form)]


def _check_csrf(form: dict[str, str], expected: str) -> None:
    if not secrets.compare_digest(form.get("csrf", ""), expected):
        raise Forbidden(
            "the form's CSRF token is missing or wrong; reload the page", code="bad_csrf"
        )


def _detail(live: LiveSession, ctx: ContextDep) -> None:
    require_detail(live.principal, partner_aggregates_only=ctx.settings.partner_aggregates_only)


def _page(request: Request, live: LiveSession | None, name: str, **data: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        name,
        {"me": None if live is None else live.principal, "csrf": live.csrf if live else "", **data},
    )


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- login -------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, error: str | None = None) -> HTMLResponse:
    csrf = secrets.token_urlsafe(32)
    response = _page(request, None, "login.html", login_csrf=csrf, error=error)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/console/login"
    )
    return response


@router.post("/login")
def login(request: Request, form: FormDep, sessions: SessionsDep, ctx: ContextDep) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(form.get("csrf", ""), expected):
        raise Forbidden("the login form expired; reload the page", code="bad_csrf")
    live = sessions.login(form.get("token", ""))
    if live is None:
        return RedirectResponse("/console/login?error=invalid_token", status_code=303)
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        live.session_id,
        max_age=ctx.settings.console_session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=ctx.settings.console_secure_cookie,
        path="/console",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
def logout(live: LiveDep, form: FormDep, sessions: SessionsDep) -> Response:
    _check_csrf(form, live.csrf)
    sessions.logout(live.session_id)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


# -- overview ----------------------------------------------------------------------------


@router.get("")
def overview(request: Request, live: LiveDep, session: SessionDep, ctx: ContextDep) -> Response:
    if live.principal.role not in (Role.ADMIN, Role.INSPECTOR, Role.PARTNER, Role.OPERATOR):
        raise Forbidden(
            "the console is for inspectors, partners, operators and admins", code="role_not_allowed"
        )
    view = InventoryService(session, ctx.clock).overview(live.principal)
    labels = [_hhmm(w.window_start) for w in view.reports_per_window]
    chart = bar_chart(
        "Reports per window", labels, [w.count for w in view.reports_per_window], "reports"
    )
    by_severity: dict[str, int] = {}
    for severity, _kind, n in view.open_findings:
        by_severity[severity] = by_severity.get(severity, 0) + n
    age = None if view.checkpoint_at is None else ctx.clock() - view.checkpoint_at
    return _page(
        request,
        live,
        "overview.html",
        view=view,
        chart=chart,
        by_severity=by_severity,
        checkpoint_age=age,
        witnesses=len(ctx.settings.witnesses),
        undeclared=QueryService(session).findings(
            live.principal, kind="undeclared_cluster", status="open", limit=5
        ),
    )


@router.get("/overview/reports.csv")
def overview_csv(live: LiveDep, session: SessionDep, ctx: ContextDep) -> Response:
    view = InventoryService(session, ctx.clock).overview(live.principal)
    return _csv(
        "reports-per-window.csv",
        ["window_start", "window_end", "reports", "energy_j"],
        [
            [_when(w.window_start), _when(w.window_end), w.count, w.total]
            for w in view.reports_per_window
        ],
    )


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


def _decode(decoder: EntryDecoder, log: TransparencyLog, index: int) -> DecodedEntry | None:
    found = log.entries(index, index + 1)
    return decoder.decode(found[0]) if found else None


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


# -- the log -----------------------------------------------------------------------------


@router.get("/log")
def log_page(
    request: Request,
    live: LiveDep,
    session: SessionDep,
    ctx: ContextDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    log = TransparencyLog(session, ctx.log_signer)
    if q:
        q = q.strip()
        if q.isascii() and q.isdigit():
            if int(q) > INT64_MAX:
                raise NotFound(f"no log entry {q}", code="unknown_entry")
            return RedirectResponse(f"/console/log/{int(q)}", status_code=303)
        try:
            leaf = base64.b64decode(q, validate=True)
        except (binascii.Error, ValueError):
            try:
                leaf = bytes.fromhex(q)
            except ValueError as exc:
                raise BadRequest(
                    "search by index, or leaf hash in base64 or hex", code="bad_query"
                ) from exc
        return RedirectResponse(f"/console/log/{log.index_of(leaf)}", status_code=303)
    size, root = log.head()
    return _page(
        request,
        live,
        "log.html",
        size=size,
        root=root,
        published=log.published(),
        checkpoint=log.signed_checkpoint(),
        witnesses=ctx.settings.witnesses,
    )


@router.get("/log/{index}")
def log_entry(
    request: Request, index: Count, live: LiveDep, session: SessionDep, ctx: ContextDep
) -> Response:
    log = TransparencyLog(session, ctx.log_signer)
    entry = _decode(EntryDecoder(session), log, index) if index >= 0 else None
    if entry is None:
        raise NotFound(f"no log entry {index}", code="unknown_entry")
    published = log.published()
    proof: list[bytes] | None = None
    verified = False
    if published is not None and index < published.size:
        proof = log.inclusion_proof(index, published.size)
        try:
            verify_inclusion(
                leaf_hash=entry.leaf_hash,
                index=index,
                tree_size=published.size,
                proof=proof,
                root=published.root_hash,
            )
            verified = True
        except ProofError:
            verified = False
    return _page(
        request, live, "entry.html", e=entry, published=published, proof=proof, verified=verified
    )


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


def install_console(app: FastAPI) -> None:
    """Mount the console, its static assets, and ``/`` -> ``/console``."""
    app.include_router(router)
    static = files("registry.console") / "static"
    app.mount("/console/static", StaticFiles(directory=str(static)), name="console-static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console", status_code=307)
