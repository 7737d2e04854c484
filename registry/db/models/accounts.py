"""Vendors, operators and their keys, API tokens and their audit trail, console sessions and
read access."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base, UTCDateTime
from registry.db.models._common import BigId

__all__ = [
    "ApiToken",
    "ConsoleSession",
    "Operator",
    "OperatorKey",
    "ReadAccess",
    "TokenEvent",
    "Vendor",
]


class Vendor(Base):
    __tablename__ = "vendors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    root_certificate_pem: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    vendor_id: Mapped[int | None] = mapped_column(ForeignKey("vendors.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OperatorKey(Base):
    """One key of an operator's key history: it signs the operator's declarations logged after
    ``log_index`` (its ``operator`` or ``operator_key`` record) until the next key's record.
    ``operators.public_key`` is the current one."""

    __tablename__ = "operator_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class TokenEvent(Base):
    """The audit trail of API tokens: who issued or revoked which token, when, and why."""

    __tablename__ = "token_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # "created" | "revoked"
    reason: Mapped[str] = mapped_column(Text)
    # None when done on the database directly (``chipreg admin``), not through the API.
    actor_token_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    """A web console login: the cookie holds an opaque id (only its SHA-256 is stored) and
    acts with the rights of the API token it was opened with; each form carries ``csrf``."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReadAccess(Base):
    """Who looked at what: one inspector's or partner's read of non-public data (treaty
    confidentiality), over the API or the console."""

    __tablename__ = "read_accesses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_id: Mapped[int] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    channel: Mapped[str] = mapped_column(String(16))  # "api" or "console"
    path: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
