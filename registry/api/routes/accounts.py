"""Vendors, operators and API tokens (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.schemas.accounts import (
    OperatorCreate,
    OperatorPublic,
    TokenCreate,
    TokenIssued,
    VendorCreate,
    VendorPublic,
)
from registry.auth import Role
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
        body.name, body.role, vendor_id=body.vendor_id, operator_id=body.operator_id
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
