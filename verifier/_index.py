"""Lookups over one snapshot, built once and shared by the rules.

A million-chip window has a million reports and installations; grouping them is a pass each,
so each grouping is built at most once (on first use) in the run's
:class:`~verifier.rules.RuleContext`, which every rule shares.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from itertools import compress, filterfalse
from operator import attrgetter

from verifier._common import Window
from verifier.facts import InstallationFact, ReportFact, Snapshot

__all__ = ["SnapshotIndex", "report_order"]

_chip_id = attrgetter("chip_id")


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
        self._stays: (
            tuple[dict[str, InstallationFact], dict[str, list[InstallationFact]]] | None
        ) = None
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
        """chip id -> the window's report. A chip that reported the window more than once
        (a clone or a replay, which other rules flag) is represented by its report with the
        highest sequence number, then log index, then digest: never by input order. Compare
        the map's length with the window's report count to tell."""
        found = self._chip_maps.get(window)
        if found is None:
            group = self.by_window().get(window, [])
            found = {r.chip_id: r for r in group}
            if len(found) != len(group):
                repeated = {c for c, n in Counter(map(_chip_id, group)).items() if n > 1}
                for r in compress(group, map(repeated.__contains__, map(_chip_id, group))):
                    if report_order(r) > report_order(found[r.chip_id]):
                        found[r.chip_id] = r
            self._chip_maps[window] = found
        return found

    def stale_chips(self, cutoff: datetime) -> set[str]:
        """Registered chips with no report whose window ends at or after ``cutoff`` (the only
        chips that can have been silent since before it); set operations, no per-chip loop."""
        chips = self.snapshot.chips
        fresh_windows = [w for w in self.by_window() if w[1] >= cutoff]
        if len(fresh_windows) == 1:  # the usual case: no set of a million ids to build
            heard = self.window_reports(fresh_windows[0])
            return set(filterfalse(heard.__contains__, chips))
        fresh: set[str] = set()
        for window in fresh_windows:
            fresh.update(self.window_reports(window))
        return set(filterfalse(fresh.__contains__, chips))

    def stay_maps(
        self,
    ) -> tuple[dict[str, InstallationFact], dict[str, list[InstallationFact]]]:
        """(chip -> its installation, for chips with exactly one; chip -> its installations
        in start order, for chips with several)."""
        if self._stays is None:
            installations = self.snapshot.installations
            single = {inst.chip_id: inst for inst in installations}
            several: dict[str, list[InstallationFact]] = {}
            if len(single) != len(installations):
                grouped: dict[str, list[InstallationFact]] = defaultdict(list)
                for inst in installations:
                    grouped[inst.chip_id].append(inst)
                for chip_id, stays in grouped.items():
                    if len(stays) > 1:
                        stays.sort(key=lambda i: (i.start, i.facility_id))
                        several[chip_id] = stays
                        del single[chip_id]
            self._stays = (single, several)
        return self._stays

    def stays_of(self, chip_id: str) -> list[InstallationFact] | None:
        """The chip's declared installations in start order; ``None`` if it has none."""
        single, several = self.stay_maps()
        one = single.get(chip_id)
        if one is not None:
            return [one]
        return several.get(chip_id)

    def sorted_chip_ids(self) -> list[str]:
        """Registered chip ids in order (cheap when the snapshot's chips come sorted)."""
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.snapshot.chips)
        return self._sorted_ids


def report_order(report: ReportFact) -> tuple[int, int, str]:
    """A total order on one chip's reports of one window (sequence number, log index,
    digest), for choosing among duplicates without looking at input order."""
    log_index = -1 if report.log_index is None else report.log_index
    return (report.seq, log_index, report.digest or "")
