"""Transfer conditions, cluster compute budgets (with revisions) and notifications."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base, UTCDateTime

__all__ = ["ClusterBudget", "ClusterBudgetRevision", "ClusterNotification", "TransferCondition"]


class TransferCondition(Base):
    """Countries a chip may be in, from ``effective_from``; conditions accumulate (intersect)."""

    __tablename__ = "transfer_conditions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), index=True)
    # Sorted ISO 3166-1 alpha-2 codes, comma-separated; "" allows no country at all.
    allowed_countries: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    declared_by: Mapped[str] = mapped_column(String(200))
    declared_role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class ClusterBudget(Base):
    """The total compute (dense operations) a declared cluster's run is declared to use."""

    __tablename__ = "cluster_budgets"

    cluster_id: Mapped[int] = mapped_column(ForeignKey("declared_clusters.id"), primary_key=True)
    compute_budget_flop: Mapped[float] = mapped_column(Float)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class ClusterBudgetRevision(Base):
    """Every budget a cluster's operator declared, in order: ``cluster_budgets`` holds the
    latest; the verifier judges by the latest revision logged before the audited log size."""

    __tablename__ = "cluster_budget_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("declared_clusters.id"), index=True)
    compute_budget_flop: Mapped[float] = mapped_column(Float)
    declared_by: Mapped[str] = mapped_column(String(200))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class ClusterNotification(Base):
    """An operator's notice that a declared cluster's run crossed a compute threshold."""

    __tablename__ = "cluster_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("declared_clusters.id"), index=True)
    threshold_flop: Mapped[float] = mapped_column(Float)
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text)
    declared_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)
