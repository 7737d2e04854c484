"""Lookups over one snapshot, built once and shared by the rules.

A million-chip window has a million reports and installations; grouping them is a pass each,
so the engine builds every grouping at most once (on first use) and hands the same index to
every rule. A rule called on its own builds its own.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from verifier._common import Window
from verifier.facts import InstallationFact, ReportFact, Snapshot

__all__ = ["SnapshotIndex"]


class SnapshotIndex:
    """Groupings of one snapshot's facts, each computed on first use."""

    __slots__ = ("_by_window", "_last_seen", "_latest", "_sorted_ids", "_stays", "snapshot")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._by_window: dict[Window, list[ReportFact]] | None = None
        self._stays: dict[str, list[InstallationFact]] | None = None
        self._sorted_ids: list[str] | None = None
        self._latest: dict[str, ReportFact] | None = None
        self._last_seen: tuple[datetime, list[tuple[str, datetime]]] | None = None

    def by_window(self) -> dict[Window, list[ReportFact]]:
        """Reports grouped by their exact ``(window_start, window_end)``, windows in order,
        each group in snapshot order."""
        if self._by_window is None:
            grouped: dict[Window, list[ReportFact]] = defaultdict(list)
            last_start: datetime | None = None
            last_end: datetime | None = None
            group: list[ReportFact] = []
            for report in self.snapshot.reports:
                start, end = report.window_start, report.window_end
                if start != last_start or end != last_end:
                    group = grouped[(start, end)]
                    last_start, last_end = start, end
                group.append(report)
            self._by_window = {w: grouped[w] for w in sorted(grouped)}
        return self._by_window

    def stays(self) -> dict[str, list[InstallationFact]]:
        """Each chip's declared installations, in start order."""
        if self._stays is None:
            grouped: dict[str, list[InstallationFact]] = defaultdict(list)
            for inst in self.snapshot.installations:
                grouped[inst.chip_id].append(inst)
            for stays in grouped.values():
                if len(stays) > 1:
                    stays.sort(key=lambda i: (i.start, i.facility_id))
            self._stays = dict(grouped)
        return self._stays

    def sorted_chip_ids(self) -> list[str]:
        """Registered chip ids in order (cheap when the snapshot's chips come sorted)."""
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.snapshot.chips)
        return self._sorted_ids

    def latest(self) -> dict[str, ReportFact]:
        """Each chip's most recent report: latest window end, then highest sequence number,
        then highest log index (so the choice never depends on input order)."""
        if self._latest is None:
            reports = self.snapshot.reports
            latest: dict[str, ReportFact] = {r.chip_id: r for r in reports}
            if len(latest) != len(reports):  # some chip reported more than once
                latest = {}
                for report in reports:
                    current = latest.get(report.chip_id)
                    if current is None or _recency(report) > _recency(current):
                        latest[report.chip_id] = report
            self._latest = latest
        return self._latest

    def last_seen(self, as_of: datetime) -> list[tuple[str, datetime]]:
        """(chip id, last heard from) of every chip installed by ``as_of``, in chip id order:
        its latest report's window end, or its installation if later or it never reported."""
        if self._last_seen is None or self._last_seen[0] != as_of:
            latest = self.latest()
            chips = self.snapshot.chips
            out = []
            for chip_id in self.sorted_chip_ids():
                installed_at = chips[chip_id].installed_at
                if installed_at is None or installed_at > as_of:
                    continue
                last = latest.get(chip_id)
                if last is None or installed_at >= last.window_end:
                    out.append((chip_id, installed_at))
                else:
                    out.append((chip_id, last.window_end))
            self._last_seen = (as_of, out)
        return self._last_seen[1]


def _recency(report: ReportFact) -> tuple[datetime, int, int]:
    return (report.window_end, report.seq, -1 if report.log_index is None else report.log_index)


def declared_at(
    stays: list[InstallationFact] | None,
    current_facility: int | None,
    installed_at: datetime | None,
    instant: datetime,
) -> int | None:
    """Where a chip was declared at ``instant`` (see :func:`verifier._common.declared_facility`),
    with the one-stay case inlined."""
    if stays:
        if len(stays) == 1:
            stay = stays[0]
            if stay.start <= instant and (stay.end is None or instant < stay.end):
                return stay.facility_id
            return None
        found = None
        for stay in stays:
            if stay.start <= instant and (stay.end is None or instant < stay.end):
                found = stay.facility_id
        return found
    if installed_at is None or installed_at > instant:
        return None
    return current_facility
