"""Vendors, operators and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from registry.api.schemas.common import CountryCode, Id, Name
from registry.auth import Role

__all__ = [
    "OperatorCreate",
    "OperatorPublic",
    "TokenCreate",
    "TokenIssued",
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
