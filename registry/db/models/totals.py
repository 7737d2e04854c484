"""The read side's running totals (kept by :mod:`registry.services.rollup`, off the ingest
path): reports and energy per window, operator and facility; chips per facility; watermarks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base, UTCDateTime
from registry.db.models._common import BigId

__all__ = ["FacilityTotal", "ReportTotal", "RollupState"]


class ReportTotal(Base):
    """Running totals of accepted reports per window, delivering operator (0: none) and the
    facility that had custody of the chip over the window (0: none), for every report up to
    ``rollup_state.report_log_index``; readers add the reports past it (the tail), so every
    sum stays exact. Kept by :mod:`registry.services.rollup`, off the ingest path."""

    __tablename__ = "report_totals"
    __table_args__ = (
        UniqueConstraint(
            "window_start", "window_end", "operator_id", "facility_id", name="uq_report_totals_key"
        ),
        Index("ix_report_totals_facility", "facility_id", "window_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    operator_id: Mapped[int] = mapped_column(Integer)
    facility_id: Mapped[int] = mapped_column(Integer)
    reports: Mapped[int] = mapped_column(BigInteger)
    energy_j: Mapped[float] = mapped_column(Float)


class FacilityTotal(Base):
    """Chips installed at a facility and their BF16 peak, as of ``rollup_state``'s custody
    mark (the log position of the newest installation then)."""

    __tablename__ = "facility_totals"

    facility_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    chips: Mapped[int] = mapped_column(BigInteger)
    peak_tflops_bf16: Mapped[float] = mapped_column(Float)


class RollupState(Base):
    """The one row (id 1) of the read totals' watermarks: the last report log index rolled
    up, and the custody mark the totals' facility attribution is as of (-1: none yet)."""

    __tablename__ = "rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    report_log_index: Mapped[int] = mapped_column(BigInteger)
    custody_log_index: Mapped[int] = mapped_column(BigInteger)
    rolled_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
