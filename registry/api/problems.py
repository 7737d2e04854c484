"""Every error leaves the API as an RFC 9457 problem document with a stable ``code``.

This is the one place where errors become HTTP: the registry's own errors (which carry their
status and code), the protocol core's errors (attestation, verifier: their status is given by
:func:`registry.errors.from_core`, so services let them through untranslated), FastAPI's
validation errors, Starlette's routing errors, the database
going away (503 ``database_unavailable``) and, last, bugs (500 ``internal_error``).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attestation.errors import AttestationError
from registry.errors import DatabaseUnavailable, RegistryError, as_registry_error, from_core

__all__ = ["MEDIA_TYPE", "install_problem_handlers", "problem"]

logger = logging.getLogger(__name__)
PROBLEM_BASE = "https://chipreg.org/errors/"
MEDIA_TYPE = "application/problem+json"

# What the database driver raises when the server is down, restarting, unreachable, or (SQLite)
# locked or unreadable; a pool that has no connection to give raises TimeoutError.
DATABASE_OUTAGES = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _registry_problem(exc: RegistryError) -> JSONResponse:
    response = problem(exc.status, exc.code, exc.detail, **exc.extra)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _is_outage(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_OUTAGES) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    )


class _LastResort:
    """Answers an exception that no handler took with a 500 problem, on the same connection.

    Starlette's ServerErrorMiddleware (where an ``Exception`` handler would go) re-raises after
    sending its response, and uvicorn then closes the connection: a client with a kept-alive
    connection would see its *next* request fail. This middleware sits inside it and does not
    re-raise. A response that had already started cannot be replaced; that one is re-raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            known = as_registry_error(exc)  # a verifier error (see install_problem_handlers)
            if known is not None:
                response = _registry_problem(known)
            elif _is_outage(exc):
                retry_after = scope["app"].state.context.settings.database_retry_after_s
                logger.warning("database unavailable: %s", str(exc).splitlines()[0])
                response = _registry_problem(
                    DatabaseUnavailable(
                        "the database is unavailable; nothing was stored, retry later",
                        retry_after=retry_after,
                    )
                )
            else:
                # A bug: log it with its traceback, never leak internals to the client.
                logger.exception("unhandled error", exc_info=exc)
                response = problem(500, "internal_error", "internal error; see the registry's log")
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RegistryError)
    async def _registry_error(_request: Request, exc: RegistryError) -> JSONResponse:
        return _registry_problem(exc)

    @app.exception_handler(AttestationError)
    async def _core_error(_request: Request, exc: AttestationError) -> JSONResponse:
        return _registry_problem(from_core(exc))

    # The verifier's errors are answered by _LastResort: registering a handler here would import
    # the verifier, which serving must not load (registry.errors.is_core_error).

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return problem(422, "invalid_request", f"{where}: {first['msg']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        code = codes.get(exc.status_code, "http_error")
        response = problem(exc.status_code, code, str(exc.detail))
        # Keep the exception's headers: a 405 must say which methods are allowed (RFC 9110).
        response.headers.update(exc.headers or {})
        return response

    # Database outages and bugs: answered by the innermost user middleware, see _LastResort.
    app.add_middleware(_LastResort)
