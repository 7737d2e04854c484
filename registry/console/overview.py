"""The console's login, logout and overview pages."""

from __future__ import annotations

import secrets

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from registry.api.deps import ContextDep, SessionDep
from registry.auth import Role
from registry.console.base import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    FormDep,
    LiveDep,
    SessionsDep,
    _check_csrf,
    _csv,
    _hhmm,
    _page,
    _when,
    router,
)
from registry.console.charts import bar_chart
from registry.errors import Forbidden
from registry.services.inventory import InventoryService
from registry.services.queries import QueryService

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
