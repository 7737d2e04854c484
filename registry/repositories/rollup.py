"""SQL of the read totals (:mod:`registry.services.rollup`): running sums of accepted reports per
(window, delivering operator, custodial facility) up to a watermark, chips and peak compute per
facility as of a custody mark, and the tail of reports past the watermark that readers add."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.db.models import (
    Chip,
    FacilityTotal,
    Installation,
    LogEntry,
    Report,
    ReportTotal,
    RollupState,
)

__all__ = ["NEVER", "NONE", "Custody", "RollupMarks", "RollupRepository", "TotalKey"]

STATE_ID = 1
NEVER = -2  # the custody mark of totals never rolled up (no custody known to them)
NONE = 0  # operator_id / facility_id of reports delivered by no operator, or in no custody

# (window_start, window_end, operator_id, facility_id)
TotalKey = tuple[datetime, datetime, int, int]


@dataclass(frozen=True, slots=True)
class RollupMarks:
    report_log_index: int  # every report at or below it is in report_totals (-1: none)
    custody_log_index: int  # facility attribution is as of this installation log index


@dataclass(frozen=True, slots=True)
class Custody:
    """One installation as the roll-up sees it."""

    chip_id: str
    facility_id: int
    installed_at: datetime
    removed_at: datetime | None
    log_index: int | None  # None: older than the log positions (before migration 0007)
    id: int


class RollupRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- marks -----------------------------------------------------------------------------
    def marks(self) -> RollupMarks:
        state = self.session.get(RollupState, STATE_ID, populate_existing=True)
        if state is None:
            msg = "rollup_state row missing: run the migrations"
            raise RuntimeError(msg)
        return RollupMarks(state.report_log_index, state.custody_log_index)

    def lock(self) -> RollupMarks:
        """Take the roll-up's lock for this transaction (one roll-up at a time) and return the
        marks. On SQLite a write comes first, so the transaction holds the database's write
        lock, and with it one consistent view, from its first read."""
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(
                text("UPDATE rollup_state SET id = id WHERE id = :id"), {"id": STATE_ID}
            )
            return self.marks()
        state = self.session.get(
            RollupState, STATE_ID, with_for_update=True, populate_existing=True
        )
        if state is None:
            msg = "rollup_state row missing: run the migrations"
            raise RuntimeError(msg)
        return RollupMarks(state.report_log_index, state.custody_log_index)

    def set_marks(self, marks: RollupMarks, at: datetime) -> None:
        self.session.execute(
            update(RollupState)
            .where(RollupState.id == STATE_ID)
            .values(
                report_log_index=marks.report_log_index,
                custody_log_index=marks.custody_log_index,
                rolled_up_at=at,
            )
        )

    def newest_report_index(self) -> int:
        return int(self.session.scalar(select(func.max(Report.log_index))) or -1)

    def newest_log_index(self) -> int:
        """The newest log entry's index (an index seek): bounds the tail from above."""
        return int(self.session.scalar(select(func.max(LogEntry.index))) or -1)

    def custody_mark(self) -> int:
        """The log position of the newest installation: every custody change (installation,
        move, transfer) writes one, so an unchanged mark means unchanged custody."""
        found = self.session.scalar(select(func.max(Installation.log_index)))
        return -1 if found is None else int(found)

    # -- the roll-up's reads ---------------------------------------------------------------
    def report_sums(
        self,
        *,
        above: int,
        upto: int | None = None,
        operator_id: int | None = None,
        facility_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        custody: bool = True,
    ) -> list[tuple[TotalKey, int, float]]:
        """Reports with ``above < log_index <= upto`` summed per (window, delivering operator,
        custodial facility now), optionally only one operator's or one facility's; without
        ``custody`` the facility is not looked up (reported as NONE).

        The reports are first taken by their log index alone, as a MATERIALIZED common table
        expression: without it SQLite (no statistics) summed by walking the per-window index
        over every report, or a facility's chips' reports, to find a tail of a few."""
        tail = select(
            Report.chip_id,
            Report.window_start,
            Report.window_end,
            func.coalesce(Report.source_operator_id, NONE).label("operator_id"),
            Report.energy_j,
        ).where(Report.log_index > above)
        if upto is not None:
            tail = tail.where(Report.log_index <= upto)
        if operator_id is not None:
            tail = tail.where(Report.source_operator_id == operator_id)
        if start is not None:
            tail = tail.where(Report.window_end > start)
        if end is not None:
            tail = tail.where(Report.window_start < end)
        t = tail.cte("tail").prefix_with("MATERIALIZED")
        facility = func.coalesce(Installation.facility_id, NONE) if custody else literal(NONE)
        stmt = select(
            t.c.window_start,
            t.c.window_end,
            t.c.operator_id,
            facility,
            func.count(),
            func.sum(t.c.energy_j),
        ).select_from(t)
        if custody:
            # The installation covering the window: begun by its start, not removed before its
            # end (the power balance's rule, InventoryRepository.facility_chip_energy).
            covers = [
                Installation.chip_id == t.c.chip_id,
                Installation.installed_at <= t.c.window_start,
                or_(Installation.removed_at.is_(None), Installation.removed_at >= t.c.window_end),
            ]
            # An outer join on the chip alone, filtered after grouping: the tail drives the
            # join (a probe of ix_installations_chip_current per tail report), not the
            # facility's tens of thousands of installations.
            stmt = stmt.outerjoin(Installation, and_(*covers))
        stmt = stmt.group_by(t.c.window_start, t.c.window_end, t.c.operator_id, facility)
        if facility_id is not None:
            stmt = stmt.having(facility == facility_id)
        return [
            ((a, b, int(o), int(f)), int(n), float(e or 0))
            for a, b, o, f, n, e in self.session.execute(stmt)
        ]

    def installations_changed_since(self, mark: int) -> list[str]:
        """Chips with an installation logged after ``mark``: custody changed for them only
        (every chip with an installation when nothing was rolled up yet)."""
        stmt = select(Installation.chip_id).distinct()
        if mark != NEVER:
            stmt = stmt.where(Installation.log_index > mark)
        return list(self.session.scalars(stmt))

    def installations_of(self, chip_ids: Sequence[str]) -> list[Custody]:
        rows = self.session.execute(
            select(
                Installation.chip_id,
                Installation.facility_id,
                Installation.installed_at,
                Installation.removed_at,
                Installation.log_index,
                Installation.id,
            ).where(Installation.chip_id.in_(chip_ids))
        )
        return [Custody(*row) for row in rows]

    def reports_of(
        self, chip_ids: Sequence[str], *, upto: int
    ) -> list[tuple[str, datetime, datetime, int, float]]:
        """(chip, window start, window end, delivering operator, energy) of these chips'
        reports at or below log index ``upto``."""
        rows = self.session.execute(
            select(
                Report.chip_id,
                Report.window_start,
                Report.window_end,
                func.coalesce(Report.source_operator_id, NONE),
                Report.energy_j,
            ).where(Report.chip_id.in_(chip_ids), Report.log_index <= upto)
        )
        return [(c, a, b, int(o), float(e)) for c, a, b, o, e in rows]

    def peaks_of(self, chip_ids: Sequence[str]) -> dict[str, float]:
        rows = self.session.execute(
            select(Chip.chip_id, Chip.peak_tflops_bf16).where(Chip.chip_id.in_(chip_ids))
        )
        return {c: float(p) for c, p in rows}

    # -- the roll-up's writes --------------------------------------------------------------
    def add_report_totals(self, deltas: Mapping[TotalKey, tuple[int, float]]) -> None:
        """Add (reports, energy) to each key's running total (a new key starts at zero); keys
        left with no report are removed."""
        rows = [
            {
                "window_start": k[0],
                "window_end": k[1],
                "operator_id": k[2],
                "facility_id": k[3],
                "reports": n,
                "energy_j": e,
            }
            for k, (n, e) in deltas.items()
            if n or e
        ]
        if not rows:
            return
        dialect = self.session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(ReportTotal)
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                ReportTotal.window_start,
                ReportTotal.window_end,
                ReportTotal.operator_id,
                ReportTotal.facility_id,
            ],
            set_={
                "reports": ReportTotal.reports + stmt.excluded.reports,
                "energy_j": ReportTotal.energy_j + stmt.excluded.energy_j,
            },
        )
        for i in range(0, len(rows), 1000):
            self.session.execute(stmt, rows[i : i + 1000])
        self.session.execute(delete(ReportTotal).where(ReportTotal.reports <= 0))

    def add_facility_totals(self, deltas: Mapping[int, tuple[int, float]]) -> None:
        rows = [
            {"facility_id": f, "chips": n, "peak_tflops_bf16": p}
            for f, (n, p) in deltas.items()
            if n or p
        ]
        if not rows:
            return
        dialect = self.session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(FacilityTotal)
        stmt = stmt.on_conflict_do_update(
            index_elements=[FacilityTotal.facility_id],
            set_={
                "chips": FacilityTotal.chips + stmt.excluded.chips,
                "peak_tflops_bf16": FacilityTotal.peak_tflops_bf16 + stmt.excluded.peak_tflops_bf16,
            },
        )
        for i in range(0, len(rows), 1000):
            self.session.execute(stmt, rows[i : i + 1000])
        self.session.execute(delete(FacilityTotal).where(FacilityTotal.chips <= 0))

    # -- readers ---------------------------------------------------------------------------
    def window_totals(
        self,
        *,
        operator_id: int | None = None,
        facility_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        newest: int | None = None,
    ) -> list[tuple[datetime, datetime, int, float]]:
        """The rolled-up (window start, end, reports, energy), summed over the dimensions not
        asked for; ``newest``: only the newest so many windows."""
        stmt = select(
            ReportTotal.window_start,
            ReportTotal.window_end,
            func.sum(ReportTotal.reports),
            func.sum(ReportTotal.energy_j),
        ).group_by(ReportTotal.window_start, ReportTotal.window_end)
        if operator_id is not None:
            stmt = stmt.where(ReportTotal.operator_id == operator_id)
        if facility_id is not None:
            stmt = stmt.where(ReportTotal.facility_id == facility_id)
        if start is not None:
            stmt = stmt.where(ReportTotal.window_end > start)
        if end is not None:
            stmt = stmt.where(ReportTotal.window_start < end)
        stmt = stmt.order_by(ReportTotal.window_start.desc(), ReportTotal.window_end.desc())
        if newest is not None:
            stmt = stmt.limit(newest)
        return [(a, b, int(n), float(e or 0)) for a, b, n, e in self.session.execute(stmt)]

    def facility_totals(self, facility_ids: Iterable[int]) -> dict[int, tuple[int, float]]:
        wanted = sorted(set(facility_ids))
        if not wanted:
            return {}
        rows = self.session.execute(
            select(
                FacilityTotal.facility_id, FacilityTotal.chips, FacilityTotal.peak_tflops_bf16
            ).where(FacilityTotal.facility_id.in_(wanted))
        )
        return {f: (int(n), float(p)) for f, n, p in rows}
