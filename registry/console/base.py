"""The console's shared plumbing (the pages are in the sibling modules): server-rendered HTML
over the same services (and so the same access rules) as the API. A session cookie stands for
the API token the user logged in with; every form carries the session's CSRF secret; every page
read by an audited role is recorded."""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from registry.api.body import StrictJsonRoute
from registry.api.deps import ContextDep, SessionDep
from registry.errors import BadRequest, Forbidden, as_registry_error
from registry.services.access import AccessLog, require_detail
from registry.services.console import ConsoleSessions, LiveSession

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
