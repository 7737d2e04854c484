"""Accepted usage reports, rejection counts and rejected submissions kept as evidence."""

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
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base, UTCDateTime
from registry.db.models._common import BigId

__all__ = ["RejectedSubmission", "RejectionCount", "Report"]


class Report(Base):
    """An accepted usage report. Its envelope is the body of log entry ``log_index``.

    Keyed by ``(chip_id, seq)``, one chip's chain: every unique key holds the chip id, so the
    table can be distributed by chip (Citus, docs/SCALE.md). ``log_index`` is unique by
    construction (the sequencer assigns each once), indexed, not constrained.
    """

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_log_index", "log_index"),
        # Read side (console, inventory API): per-window sums from the index alone, reports
        # received since an instant, a facility's chips' reports by chip.
        Index("ix_reports_window_energy", "window_start", "window_end", "energy_j"),
        Index("ix_reports_received_at", "received_at"),
        Index("ix_reports_chip_window", "chip_id", "window_start", "window_end", "energy_j"),
    )

    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    utilization: Mapped[float] = mapped_column(Float)
    energy_j: Mapped[float] = mapped_column(Float)
    # [[peer, link, tx_bytes, rx_bytes], ...] as compact JSON: read by the verifier.
    links_json: Mapped[str] = mapped_column(Text)
    log_index: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The facility the report claims to come from (predicate facility_id), if it names one.
    facility_claim: Mapped[int | None] = mapped_column(Integer)
    # The operator whose token delivered it.
    source_operator_id: Mapped[int | None] = mapped_column(Integer)


class RejectionCount(Base):
    """Rejected reports are stored nowhere; they are only counted, by reason and chip."""

    __tablename__ = "rejection_counts"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    chip_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RejectedSubmission(Base):
    """A correctly signed report the registry turned away (a replay, a reused sequence number, a
    report off the chain): the chip key's word, kept as evidence for the clone and replay rules.
    Bounded: ingest prunes the oldest beyond ``CHIPREG_MAX_REJECTED_SUBMISSIONS``."""

    __tablename__ = "rejected_submissions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chip_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(40))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    facility_claim: Mapped[int | None] = mapped_column(Integer)
    source_operator_id: Mapped[int | None] = mapped_column(Integer)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    log_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # For a copy of an accepted report (a replay, a forbidden copy): that report's receipt time
    # as the logged record names it (``original.received_at``); None when it names none.
    original_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
