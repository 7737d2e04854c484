"""Facilities, chips (with their hash-chain head), installations and declared clusters."""

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
from registry.db.models._common import GENESIS
from registry.db.models.accounts import Operator, Vendor

__all__ = ["Chip", "ClusterMember", "DeclaredCluster", "Facility", "Installation"]


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
    # Declared constant non-IT load beyond what PUE covers (offices, other tenants), kW.
    non_it_load_kw: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # Position of the ``facility`` record (a run's inputs are cut at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)
    # Declared host power model (all four set, or none): see verifier.facts.HostPowerFact.
    host_gpus_per_host: Mapped[int | None] = mapped_column(Integer)
    host_idle_w: Mapped[float | None] = mapped_column(Float)
    host_per_gpu_slot_w: Mapped[float | None] = mapped_column(Float)
    host_busy_w: Mapped[float | None] = mapped_column(Float)

    operator: Mapped[Operator] = relationship(lazy="joined")

    @property
    def host_power(self) -> dict[str, float] | None:
        """The declared host power model as its record fields, ``None`` if not declared."""
        if self.host_gpus_per_host is None:
            return None
        return {
            "gpus_per_host": self.host_gpus_per_host,
            "idle_w": self.host_idle_w or 0.0,
            "per_gpu_slot_w": self.host_per_gpu_slot_w or 0.0,
            "busy_w": self.host_busy_w or 0.0,
        }

    @property
    def operator_name(self) -> str:
        return self.operator.name


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
    # End of service (docs/PROTOCOL.md 6.1): a decommissioned chip is no longer expected to
    # report; a revoked chip's key is no longer trusted. Each is logged as a chip_status record.
    decommissioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decommission_reason: Mapped[str | None] = mapped_column(Text)
    decommission_log_index: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(Text)
    revocation_log_index: Mapped[int | None] = mapped_column(BigInteger)
    # GPU device identity (attestation.gpu: SHA-256 of the device identity key), set when the
    # chip enrolled with verified GPU evidence. Unique: one GPU, one chip.
    hardware_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    hardware_attested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Position of the ``enrollment`` record (a run's inputs are cut at a log size).
    enrollment_log_index: Mapped[int | None] = mapped_column(BigInteger)
    # When the first declared installation began (the earliest installed_at of the chip's
    # installations, kept here by ChipRepository.note_installation): no report window starts
    # earlier. On the chip row so ingest reads it with the chain head.
    first_installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    vendor: Mapped[Vendor] = relationship(lazy="joined")


class Installation(Base):
    """One link of the chain of custody: a chip at a facility from ``installed_at``."""

    __tablename__ = "installations"
    __table_args__ = (
        Index("ix_installations_chip_current", "chip_id", "removed_at"),
        Index(
            "ix_installations_facility_current",
            "facility_id",
            "removed_at",
            "chip_id",
            "installed_at",
        ),
        # The read totals' custody mark (registry/services/rollup.py): the newest installation.
        Index("ix_installations_log_index", "log_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"))
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    declared_by_operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)

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
