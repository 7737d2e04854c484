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

    __slots__ = (
        "_by_window",
        "_chip_maps",
        "_sorted_ids",
        "_stays",
        "snapshot",
    )

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._by_window: dict[Window, list[ReportFact]] | None = None
        self._stays: dict[str, list[InstallationFact]] | None = None
        self._sorted_ids: list[str] | None = None
        self._chip_maps: dict[Window, dict[str, ReportFact]] = {}

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

    def window_reports(self, window: Window) -> dict[str, ReportFact]:
        """chip id -> the window's report (the last in snapshot order if a chip sent several;
        compare its length with the window's report count to tell)."""
        found = self._chip_maps.get(window)
        if found is None:
            found = {r.chip_id: r for r in self.by_window().get(window, ())}
            self._chip_maps[window] = found
        return found

    def stale_chips(self, cutoff: datetime) -> set[str]:
        """Registered chips with no report whose window ends at or after ``cutoff`` (the only
        chips that can have been silent since before it); set operations, no per-chip loop."""
        fresh: set[str] = set()
        for window in self.by_window():
            if window[1] >= cutoff:
                fresh.update(self.window_reports(window))
        return set(self.snapshot.chips.keys() - fresh)

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
