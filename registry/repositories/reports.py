"""Accepted usage reports and counted rejections."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, select, type_coerce, update
from sqlalchemy.orm import Session

from registry.db.models import RejectionCount, Report
from registry.repositories.bulk import bulk_insert

__all__ = ["ReportRepository"]


class ReportRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert accepted reports (all columns but ``id``), in bulk: COPY on PostgreSQL."""
        bulk_insert(self.session, Report.__table__, rows)  # type: ignore[arg-type]

    def heads_between(self, start: int, end: int) -> list[tuple[str, int, str, datetime, int]]:
        """``(chip_id, seq, digest, window_end, log_index)`` of the reports logged at indexes
        ``[start, end)``, in log order: the chain heads they moved, last one winning."""
        sqlite = self.session.get_bind().dialect.name == "sqlite"
        end_col: Any = type_coerce(Report.window_end, String) if sqlite else Report.window_end
        rows = self.session.execute(
            select(Report.chip_id, Report.seq, Report.digest, end_col, Report.log_index)
            .where(Report.log_index >= start, Report.log_index < end)
            .order_by(Report.log_index)
        ).all()
        if not sqlite:
            return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
        # The stored text, converted once per distinct value (a fleet shares its windows).
        parsed: dict[str, datetime] = {}
        out = []
        for r in rows:
            at = parsed.get(r[3])
            if at is None:
                at = parsed[r[3]] = datetime.fromisoformat(r[3]).replace(tzinfo=UTC)
            out.append((r[0], r[1], r[2], at, r[4]))
        return out

    def digest_at(self, chip_id: str, seq: int) -> str | None:
        return self.session.scalar(
            select(Report.digest).where(Report.chip_id == chip_id, Report.seq == seq)
        )

    def receipts(
        self, keys: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, datetime]]:
        """``(log_index, received_at)`` of the accepted reports with these ``(chip_id, seq)``."""
        if not keys:
            return {}
        rows = self.session.execute(
            select(Report.chip_id, Report.seq, Report.log_index, Report.received_at).where(
                Report.chip_id.in_(sorted({chip for chip, _ in keys}))
            )
        )
        return {(c, q): (i, at) for c, q, i, at in rows if (c, q) in keys}

    def latest_for_chip(self, chip_id: str, limit: int) -> list[Report]:
        return list(
            self.session.scalars(
                select(Report)
                .where(Report.chip_id == chip_id)
                .order_by(Report.seq.desc())
                .limit(limit)
            )
        )

    def in_period(self, start: datetime | None, end: datetime | None) -> list[Report]:
        stmt = select(Report).order_by(Report.log_index)
        if start is not None:
            stmt = stmt.where(Report.window_end > start)
        if end is not None:
            stmt = stmt.where(Report.window_start < end)
        return list(self.session.scalars(stmt))

    def count_rejections(self, rejections: Counter[tuple[str, str]], at: datetime) -> None:
        """Add to the per-(code, chip) rejection counters."""
        for (code, chip_id), n in sorted(rejections.items()):
            updated = self.session.execute(
                update(RejectionCount)
                .where(RejectionCount.code == code, RejectionCount.chip_id == chip_id)
                .values(count=RejectionCount.count + n, last_at=at)
            )
            if updated.rowcount == 0:  # type: ignore[attr-defined]
                self.session.add(RejectionCount(code=code, chip_id=chip_id, count=n, last_at=at))
        self.session.flush()
