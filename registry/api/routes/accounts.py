"""Vendors, operators and API tokens (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.schemas.accounts import (
    OperatorCreate,
    OperatorKeyCreate,
    OperatorKeyPublic,
    OperatorPublic,
    TokenCreate,
    TokenEventPublic,
    TokenIssued,
    TokenPublic,
    TokenRevoke,
    VendorCreate,
    VendorPublic,
)
from registry.api.schemas.common import Id
from registry.auth import Role
from registry.errors import NotFound
from registry.services.accounts import AccountService

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["accounts"])


@router.post("/vendors", status_code=201, response_model=VendorPublic)
def create_vendor(
    body: VendorCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    caller.require(Role.ADMIN)
    return AccountService(session, ctx.clock).create_vendor(body.name, body.root_certificate_pem)


@router.get("/vendors", response_model=list[VendorPublic])
def list_vendors(caller: CallerDep, session: SessionDep, ctx: ContextDep) -> object:
    caller.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER, Role.VENDOR, Role.OPERATOR)
    return AccountService(session, ctx.clock).repo.vendors()


@router.post("/operators", status_code=201, response_model=OperatorPublic)
def create_operator(
    body: OperatorCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    caller.require(Role.ADMIN)
    return AccountService(session, ctx.clock).create_operator(
        body.name, body.country, body.public_key
    )


@router.get("/operators", response_model=list[OperatorPublic])
def list_operators(caller: CallerDep, session: SessionDep, ctx: ContextDep) -> object:
    caller.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER)
    return AccountService(session, ctx.clock).repo.operators()


@router.post("/tokens", status_code=201, response_model=TokenIssued)
def create_token(
    body: TokenCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> TokenIssued:
    caller.require(Role.ADMIN)
    issued = AccountService(session, ctx.clock).create_token(
        body.name,
        body.role,
        vendor_id=body.vendor_id,
        operator_id=body.operator_id,
        actor=caller,
    )
    r = issued.record
    return TokenIssued(
        id=r.id,
        name=r.name,
        role=Role(r.role),
        vendor_id=r.vendor_id,
        operator_id=r.operator_id,
        token=issued.secret,
    )


@router.post("/operators/{operator_id}/keys", status_code=201, response_model=OperatorKeyPublic)
def rotate_operator_key(
    operator_id: Id,
    body: OperatorKeyCreate,
    caller: CallerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> object:
    """Register the operator's new declaration key (admin); logged as an ``operator_key``
    record. Declarations from now on must be signed by it; earlier ones keep verifying under
    the key in force at their log position."""
    return AccountService(session, ctx.clock).rotate_operator_key(
        caller, operator_id, body.public_key, body.reason
    )


@router.get("/operators/{operator_id}/keys", response_model=list[OperatorKeyPublic])
def operator_keys(
    operator_id: Id, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """The operator's key history, oldest first, with the log position each took effect."""
    return AccountService(session, ctx.clock).operator_keys(caller, operator_id)


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(caller: CallerDep, session: SessionDep, ctx: ContextDep) -> object:
    """Every token ever issued, revoked ones included; never a secret."""
    caller.require(Role.ADMIN)
    return AccountService(session, ctx.clock).tokens()


@router.get("/tokens/self", response_model=TokenPublic)
def who_am_i(caller: CallerDep, session: SessionDep, ctx: ContextDep) -> object:
    """The calling token (any role): a cheap authenticated call to check a token works."""
    return AccountService(session, ctx.clock).repo.token(caller.token_id)


@router.post("/tokens/{token_id}/revoke", response_model=TokenPublic)
def revoke_token(
    token_id: Id, body: TokenRevoke, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """Revoke a token: its next request, in any worker, gets 401 ``token_revoked``."""
    caller.require(Role.ADMIN)
    return AccountService(session, ctx.clock).revoke_token(
        token_id, reason=body.reason, actor=caller
    )


@router.get("/tokens/{token_id}/events", response_model=list[TokenEventPublic])
def token_events(token_id: Id, caller: CallerDep, session: SessionDep, ctx: ContextDep) -> object:
    """The token's audit trail: who issued and who revoked it, when and why."""
    caller.require(Role.ADMIN)
    service = AccountService(session, ctx.clock)
    if service.repo.token(token_id) is None:
        raise NotFound(f"no token {token_id}", code="unknown_token")
    return service.token_events(token_id)
