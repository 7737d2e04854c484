"""Vendors, operators and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from registry.api.schemas.common import CountryCode, Id, Name
from registry.auth import Role

__all__ = [
    "OperatorCreate",
    "OperatorKeyCreate",
    "OperatorKeyPublic",
    "OperatorPublic",
    "TokenCreate",
    "TokenEventPublic",
    "TokenIssued",
    "TokenPublic",
    "TokenRevoke",
    "VendorCreate",
    "VendorPublic",
]


class VendorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    root_certificate_pem: str = Field(max_length=20_000)


class VendorPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    fingerprint: str
    root_certificate_pem: str
    created_at: datetime


class OperatorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    country: CountryCode
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")


class OperatorPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    country: str
    public_key: str
    created_at: datetime


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    role: Role
    vendor_id: Id | None = None
    operator_id: Id | None = None


class TokenIssued(BaseModel):
    id: int
    name: str
    role: Role
    vendor_id: int | None
    operator_id: int | None
    token: str = Field(description="The bearer secret. Shown once; only its hash is stored.")


class OperatorKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(description="base64 of the new raw 32-byte Ed25519 public key")
    reason: str = Field(min_length=1, max_length=2000, description="why, for the log")


class OperatorKeyPublic(BaseModel):
    """One key of an operator's history: it signs the operator's declarations logged after
    ``log_index`` until the next key's ``log_index``."""

    model_config = ConfigDict(from_attributes=True)
    operator_id: int
    public_key: str
    reason: str
    valid_from: datetime
    log_index: int | None


class TokenPublic(BaseModel):
    """A token as listed: never its secret (only its hash is stored)."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    role: Role
    vendor_id: int | None
    operator_id: int | None
    created_at: datetime
    revoked_at: datetime | None


class TokenRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="why, for the audit trail")


class TokenEventPublic(BaseModel):
    """One row of the token audit trail."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    token_id: int
    action: str = Field(description="created | revoked")
    reason: str
    actor_token_id: int | None = Field(description="None: done on the database (chipreg admin)")
    actor_name: str
    actor_role: str
    at: datetime
