"""Request dependencies: the transaction scope, the caller, and services built on them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from registry.api.context import AppContext
from registry.auth import Principal
from registry.db.engine import session_scope
from registry.errors import Unauthenticated
from registry.services.access import AccessLog, require_detail
from registry.services.accounts import AccountService
from registry.services.log import TransparencyLog

__all__ = ["CallerDep", "ContextDep", "DetailCallerDep", "LogDep", "SessionDep"]


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency on a
# worker thread, one thread hop per dependency per request.
async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_session(context: ContextDep) -> Iterator[Session]:
    """One transaction per request: commit on success, roll back on any error.

    ``scope="function"`` below makes the commit happen before the response is sent, so a
    client never sees an acknowledgement for something that was not committed.
    """
    with session_scope(context.sessions) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Declares the bearer scheme in the OpenAPI document (the Authorize button of /docs); the
# missing or malformed header is refused below, as a problem document with our own code.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="An API token issued by an admin: `Authorization: Bearer <token>`.",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_caller(
    request: Request, session: SessionDep, context: ContextDep, bearer: BearerDep
) -> Principal:
    token = bearer.credentials.strip() if bearer is not None else ""
    if not token:
        raise Unauthenticated("send an API token as 'Authorization: Bearer <token>'")
    # Read on every request, never cached: a revoked token is refused on its next request.
    principal = AccountService(session, context.clock).authenticate(token)
    if request.method == "GET":
        # Who looked at what: an audited role's read is recorded in the request's transaction.
        AccessLog(session, context.clock).record(
            principal, channel="api", path=request.url.path, query=request.url.query
        )
    return principal


CallerDep = Annotated[Principal, Depends(get_caller)]


async def get_detail_caller(caller: CallerDep, context: ContextDep) -> Principal:
    """The caller of a per-chip detail read (refused to partners limited to aggregates)."""
    require_detail(caller, partner_aggregates_only=context.settings.partner_aggregates_only)
    return caller


DetailCallerDep = Annotated[Principal, Depends(get_detail_caller)]


async def get_log(session: SessionDep, context: ContextDep) -> TransparencyLog:
    return TransparencyLog(session, context.log_signer)


LogDep = Annotated[TransparencyLog, Depends(get_log)]
