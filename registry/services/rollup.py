"""Running totals for the read side (the console's overview and facility pages, the power
balance, the aggregates), kept off the ingest path.

A **roll-up step** (:meth:`ReadTotals.roll_up`, run by the continuous verifier's worker, the
load tests, or anyone with a session) adds every report accepted since the last step (log index
above the watermark ``rollup_state.report_log_index``) to ``report_totals``, one row per
(window, delivering operator, facility that had custody of the chip over the window), and moves
the watermark. Log indexes become visible in order (appends hold the log's lock until they
commit), so "every report at or below the watermark" is a prefix of the log.

**Custody** can change after reports were rolled up (a chip moved or transferred, a late
declaration): the step keeps its facility attribution "as of" a custody mark, the log position
of the newest installation (every custody change writes one). When the mark moved, only the
chips with a newer installation are re-attributed: their rolled-up reports move from the
facility that had custody as of the old mark to the one that has it now, and the chips and peak
compute per facility (``facility_totals``) move with them.

**Readers** add the tail (reports above the watermark, an index range on ``log_index``) to the
rolled-up rows, so every number is exact whenever the step last ran. A facility's sums are taken
from the totals only while custody is unchanged since the step (otherwise the caller computes
them directly from the rows); a read that sees the watermark move under it (PostgreSQL, another
transaction's step) reads again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from registry.repositories.rollup import (
    NEVER,
    NONE,
    Custody,
    RollupMarks,
    RollupRepository,
    TotalKey,
)

__all__ = ["ReadTotals", "RollupResult", "WindowTotal"]

CHUNK = 500
READ_TRIES = 3
# A tail longer than this (in log entries above the watermark) is not summed at read time: the
# caller reads the rows its own way (bounded by what it shows), until a roll-up step runs.
LONG_TAIL = 20_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WindowTotal:
    window_start: datetime
    window_end: datetime
    reports: int
    energy_j: float


@dataclass(frozen=True, slots=True)
class RollupResult:
    before: RollupMarks
    after: RollupMarks
    reports: int  # reports added to the totals by this step
    chips_reattributed: int  # chips whose custody changed since the last step


def _custody_at(
    installations: Sequence[Custody], mark: int
) -> list[tuple[int, datetime, datetime | None]]:
    """One chip's custody periods (facility, installed, removed) as they stood when the log
    held ``mark + 1`` entries: a removal is written with the installation that ends it, so an
    installation is removed as of ``mark`` only if its successor is logged at or below it."""
    if mark == NEVER:
        return []
    known = sorted(
        (i for i in installations if i.log_index is None or i.log_index <= mark),
        key=lambda i: (-1 if i.log_index is None else i.log_index, i.id),
    )
    last = len(known) - 1
    return [
        (i.facility_id, i.installed_at, i.removed_at if n < last else None)
        for n, i in enumerate(known)
    ]


def _facility_over(
    periods: Sequence[tuple[int, datetime, datetime | None]], start: datetime, end: datetime
) -> int:
    """The facility whose custody period covers the window (the power balance's rule)."""
    for facility, installed, removed in periods:
        if installed <= start and (removed is None or removed >= end):
            return facility
    return NONE


class ReadTotals:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.repo = RollupRepository(session)
        self.clock = clock

    # -- the roll-up step ----------------------------------------------------------------
    def roll_up(self) -> RollupResult:
        """Add the reports accepted since the last step, re-attribute the chips whose custody
        changed, move the marks. Takes the roll-up's lock (one step at a time); on
        PostgreSQL run it in a REPEATABLE READ transaction (:func:`registry.workers.rollup`
        does) so every read sees one snapshot. The caller commits."""
        before = self.repo.lock()
        after = RollupMarks(self.repo.newest_report_index(), self.repo.custody_mark())
        deltas: dict[TotalKey, list[float]] = defaultdict(lambda: [0, 0.0])
        chip_deltas: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
        moved = 0
        if after.custody_log_index != before.custody_log_index:
            changed = self.repo.installations_changed_since(before.custody_log_index)
            moved = len(changed)
            for i in range(0, len(changed), CHUNK):
                self._reattribute(changed[i : i + CHUNK], before, after, deltas, chip_deltas)
        added = 0
        if after.report_log_index > before.report_log_index:
            for key, n, energy in self.repo.report_sums(
                above=before.report_log_index, upto=after.report_log_index
            ):
                deltas[key][0] += n
                deltas[key][1] += energy
                added += n
        self.repo.add_report_totals({k: (int(n), e) for k, (n, e) in deltas.items()})
        self.repo.add_facility_totals({f: (int(n), p) for f, (n, p) in chip_deltas.items()})
        self.repo.set_marks(after, self.clock())
        return RollupResult(before, after, added, moved)

    def _reattribute(
        self,
        chips: Sequence[str],
        before: RollupMarks,
        after: RollupMarks,
        deltas: dict[TotalKey, list[float]],
        chip_deltas: dict[int, list[float]],
    ) -> None:
        by_chip: dict[str, list[Custody]] = defaultdict(list)
        for row in self.repo.installations_of(chips):
            by_chip[row.chip_id].append(row)
        old = {c: _custody_at(by_chip[c], before.custody_log_index) for c in chips}
        new = {c: _custody_at(by_chip[c], after.custody_log_index) for c in chips}
        peaks = self.repo.peaks_of(chips)
        for chip in chips:
            was = old[chip][-1] if old[chip] and old[chip][-1][2] is None else None
            now = new[chip][-1] if new[chip] and new[chip][-1][2] is None else None
            was_at = NONE if was is None else was[0]
            now_at = NONE if now is None else now[0]
            if was_at != now_at:
                for facility, sign in ((was_at, -1), (now_at, 1)):
                    if facility != NONE:
                        chip_deltas[facility][0] += sign
                        chip_deltas[facility][1] += sign * peaks.get(chip, 0.0)
        if before.report_log_index < 0:
            return
        for chip, start, end, operator, energy in self.repo.reports_of(
            chips, upto=before.report_log_index
        ):
            was_at = _facility_over(old[chip], start, end)
            now_at = _facility_over(new[chip], start, end)
            if was_at != now_at:
                for facility, sign in ((was_at, -1), (now_at, 1)):
                    total = deltas[(start, end, operator, facility)]
                    total[0] += sign
                    total[1] += sign * energy

    # -- readers -------------------------------------------------------------------------
    def tail_is_short(self) -> bool:
        """Whether the reports above the watermark are few enough to sum at read time (a
        registry whose continuous verifier never ran has every report in the tail)."""
        marks = self.repo.marks()
        return self.repo.newest_log_index() - marks.report_log_index <= LONG_TAIL

    def _consistent(self, read: Callable[[RollupMarks], T], *, custody: bool) -> T | None:
        """``read(marks)`` if no roll-up step moved the marks while it read (and, with
        ``custody``, if custody is unchanged since the last step); None otherwise: the caller
        computes from the rows."""
        for _ in range(READ_TRIES):
            marks = self.repo.marks()
            if custody and self.repo.custody_mark() != marks.custody_log_index:
                return None
            result = read(marks)
            if self.repo.marks() == marks:
                return result
        return None

    def windows(self, *, operator_id: int | None, newest: int) -> list[WindowTotal]:
        """Reports and energy per window, the newest ``newest`` windows (fleet-wide or
        delivered by one operator): the totals plus the tail, exact."""

        def read(marks: RollupMarks | None) -> list[WindowTotal]:
            sums: dict[tuple[datetime, datetime], list[float]] = defaultdict(lambda: [0, 0.0])
            if marks is not None:
                for a, b, n, e in self.repo.window_totals(operator_id=operator_id, newest=newest):
                    sums[(a, b)][0] += n
                    sums[(a, b)][1] += e
            for (a, b, _, _), n, e in self.repo.report_sums(
                above=-1 if marks is None else marks.report_log_index,
                operator_id=operator_id,
                custody=False,
            ):
                sums[(a, b)][0] += n
                sums[(a, b)][1] += e
            keys = sorted(sums)[-newest:] if newest > 0 else []
            return [WindowTotal(a, b, int(sums[a, b][0]), sums[a, b][1]) for a, b in keys]

        found = self._consistent(read, custody=False)
        # The marks kept moving under the read: every report, from the rows.
        return read(None) if found is None else found

    def facility_windows(
        self, facility_id: int, *, start: datetime | None, end: datetime | None
    ) -> list[WindowTotal] | None:
        """Reports and energy per window of the chips in the facility's custody over each
        window; None when custody changed since the last roll-up step, or the tail is long."""
        if not self.tail_is_short():
            return None

        def read(marks: RollupMarks) -> list[WindowTotal]:
            sums: dict[tuple[datetime, datetime], list[float]] = defaultdict(lambda: [0, 0.0])
            for a, b, n, e in self.repo.window_totals(
                facility_id=facility_id, start=start, end=end
            ):
                sums[(a, b)][0] += n
                sums[(a, b)][1] += e
            for (a, b, _, _), n, e in self.repo.report_sums(
                above=marks.report_log_index, facility_id=facility_id, start=start, end=end
            ):
                sums[(a, b)][0] += n
                sums[(a, b)][1] += e
            return [
                WindowTotal(a, b, int(sums[a, b][0]), sums[a, b][1])
                for a, b in sorted(sums)
                if sums[a, b][0]
            ]

        return self._consistent(read, custody=True)

    def facility_chips(self, facility_ids: Sequence[int]) -> dict[int, tuple[int, float]] | None:
        """(chips installed, their BF16 peak TFLOP/s) per facility; None when custody changed
        since the last roll-up step."""
        return self._consistent(lambda _: self.repo.facility_totals(facility_ids), custody=True)
