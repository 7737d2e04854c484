"""ORM models: the registry's tables.

Chips carry their hash-chain head (``last_seq``, ``last_digest``, ``last_window_end``) so the
ingest path checks sequence and chain with one read per chip. The exact envelope bytes that were
verified are stored once, as the body of the report's log entry (``reports.log_index``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db.base import Base, UTCDateTime

__all__ = [
    "ApiToken",
    "Chip",
    "ClusterMember",
    "DeclaredCluster",
    "Facility",
    "Finding",
    "Installation",
    "LogCheckpoint",
    "LogCosignature",
    "LogEntry",
    "LogState",
    "LogTile",
    "Operator",
    "RejectionCount",
    "Report",
    "Vendor",
]

GENESIS = "0" * 64


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


class Facility(Base):
    __tablename__ = "facilities"
    __table_args__ = (UniqueConstraint("operator_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2), index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    declared_power_kw: Mapped[float] = mapped_column(Float)
    pue: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    operator: Mapped[Operator] = relationship(lazy="joined")


class Chip(Base):
    __tablename__ = "chips"

    chip_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    model: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    certificate_pem: Mapped[str] = mapped_column(Text)
    certificate_fingerprint: Mapped[str] = mapped_column(String(64))
    peak_tflops_bf16: Mapped[float] = mapped_column(Float)
    tdp_watts: Mapped[float] = mapped_column(Float)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Hash-chain head: the last accepted report of this chip.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_digest: Mapped[str] = mapped_column(String(64), default=GENESIS)
    last_window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_log_index: Mapped[int | None] = mapped_column(BigInteger)

    vendor: Mapped[Vendor] = relationship(lazy="joined")


class Installation(Base):
    """One link of the chain of custody: a chip at a facility from ``installed_at``."""

    __tablename__ = "installations"
    __table_args__ = (Index("ix_installations_chip_current", "chip_id", "removed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    declared_by_operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    facility: Mapped[Facility] = relationship(lazy="joined")


class DeclaredCluster(Base):
    __tablename__ = "declared_clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    members: Mapped[list[ClusterMember]] = relationship(
        lazy="selectin", cascade="all, delete-orphan"
    )


class ClusterMember(Base):
    __tablename__ = "cluster_members"

    cluster_id: Mapped[int] = mapped_column(ForeignKey("declared_clusters.id"), primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), primary_key=True)


class Report(Base):
    """An accepted usage report. Its envelope is the body of log entry ``log_index``."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("chip_id", "seq"),
        Index("ix_reports_window", "window_start", "window_end"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    utilization: Mapped[float] = mapped_column(Float)
    energy_j: Mapped[float] = mapped_column(Float)
    # [[peer, link, tx_bytes, rx_bytes], ...] as compact JSON: read by the verifier.
    links_json: Mapped[str] = mapped_column(Text)
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RejectionCount(Base):
    """Rejected reports are stored nowhere; they are only counted, by reason and chip."""

    __tablename__ = "rejection_counts"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    chip_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogEntry(Base):
    """One leaf of the append-only Merkle log: the exact bytes it commits to."""

    __tablename__ = "log_entries"
    __table_args__ = (Index("ix_log_entries_leaf_hash", "leaf_hash"),)

    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogState(Base):
    """The log's tree head: size and the compact range (right-edge subtree hashes)."""

    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    compact_range: Mapped[bytes] = mapped_column(LargeBinary)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogTile(Base):
    """One C2SP tlog-tiles tile: up to 256 hashes of level ``level`` (rewritten while partial)."""

    __tablename__ = "log_tiles"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpoint(Base):
    """A checkpoint the publisher signed: the exact signed note, log signature only."""

    __tablename__ = "log_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogCosignature(Base):
    """A witness's C2SP tlog-cosignature line over one stored checkpoint."""

    __tablename__ = "log_cosignatures"

    size: Mapped[int] = mapped_column(
        ForeignKey("log_checkpoints.size"), primary_key=True, autoincrement=False
    )
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Finding(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_version: Mapped[int] = mapped_column(Integer)
    policy_id: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(128), index=True)
    facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id"), index=True)
    country: Mapped[str | None] = mapped_column(String(2), index=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(Text)
    details_json: Mapped[str] = mapped_column(Text)
    evidence_json: Mapped[str] = mapped_column(Text)
    citation: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
