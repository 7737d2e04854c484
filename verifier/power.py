"""Facility power meters against the energy the declared chips reported.

Per facility and meter window, the energy the declared chips explain is

    explained = (sum of their reported energy + peak energy of declared chips that did not
                 report) * (1 + host_overhead_fraction) * PUE + non-IT load * seconds

and ``excess = metered - explained``. Above ``tolerance_fraction`` of the metered energy *and*
above ``min_chip_equivalents`` chips (one chip-equivalent = ``reference_chip_power_w`` x
(1 + host overhead) x PUE over the window), rule ``power.ghost_chips`` fires with the excess in
chip-equivalents. Rule ``chip.underreporting`` (meter side) fires at the same time when chips
claiming idle at that facility could, at their peak, account for the excess: either they lie
about being idle, or ghost chips draw the power.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from verifier._common import Window, declared_facility, make_finding
from verifier._index import SnapshotIndex
from verifier.facts import ChipFact, MeterReadingFact, Snapshot
from verifier.findings import Finding, rfc3339
from verifier.policy import Policy

__all__ = ["GHOST_RULE_ID", "UNDERREPORTING_RULE_ID", "find_power_anomalies"]

GHOST_RULE_ID = "power.ghost_chips"
UNDERREPORTING_RULE_ID = "chip.underreporting"


def _candidates(
    snapshot: Snapshot, index: SnapshotIndex, metered: set[int]
) -> dict[int, list[tuple[str, ChipFact | None]]]:
    """Chips declared (now or in the past) at each metered facility, in chip id order."""
    chips = snapshot.chips
    stays = index.stays()
    ordered: Iterable[str] = index.sorted_chip_ids()
    if any(chip_id not in chips for chip_id in stays):  # installations of unknown chips
        ordered = sorted(set(chips).union(stays))
    out: dict[int, list[tuple[str, ChipFact | None]]] = defaultdict(list)
    for chip_id in ordered:
        chip = chips.get(chip_id)
        current = None if chip is None else chip.facility_id
        if current is not None and current in metered:
            out[current].append((chip_id, chip))
        for stay in stays.get(chip_id, ()):
            f = stay.facility_id
            if f != current and f in metered:
                bucket = out[f]
                if not bucket or bucket[-1][0] != chip_id:
                    bucket.append((chip_id, chip))
    return out


@dataclass(slots=True)
class _Excess:
    windows: list[Window] = field(default_factory=list)
    equivalents: list[float] = field(default_factory=list)
    evidence: list[int | None] = field(default_factory=list)
    idle_chips: set[str] = field(default_factory=set)


def find_power_anomalies(
    snapshot: Snapshot, policy: Policy, *, index: SnapshotIndex | None = None
) -> tuple[list[Finding], list[Finding]]:
    """(ghost-chip findings, meter-side under-reporting findings), one per facility each."""
    ghost = policy.rule(GHOST_RULE_ID)
    under = policy.rule(UNDERREPORTING_RULE_ID)
    if ghost is None or not snapshot.meter_readings:
        return [], []
    if index is None:
        index = SnapshotIndex(snapshot)
    overhead = ghost.number("host_overhead_fraction")
    tolerance = ghost.number("tolerance_fraction")
    min_eq = ghost.number("min_chip_equivalents")
    reference_w = ghost.number("reference_chip_power_w")
    idle_util = None if under is None else under.number("idle_utilization")

    readings: dict[tuple[int, Window], list[MeterReadingFact]] = defaultdict(list)
    for m in snapshot.meter_readings:
        readings[(m.facility_id, (m.window_start, m.window_end))].append(m)
    stays = index.stays()
    candidates = _candidates(snapshot, index, {f for f, _ in readings})
    excess: dict[int, _Excess] = defaultdict(_Excess)
    for (facility_id, window), ms in sorted(readings.items()):
        site = snapshot.facilities.get(facility_id)
        if site is None:
            continue
        seconds = (window[1] - window[0]).total_seconds()
        metered = sum(m.energy_j for m in sorted(ms, key=lambda m: m.meter_id))
        reports = index.window_reports(window)
        chip_energy = 0.0
        idle: list[str] = []
        idle_headroom = 0.0
        instant = window[0]
        for chip_id, chip in candidates.get(facility_id, ()):
            chip_stays = stays.get(chip_id)
            if chip_stays is not None and len(chip_stays) == 1:  # the common case, inlined
                stay = chip_stays[0]
                if not (
                    stay.facility_id == facility_id
                    and stay.start <= instant
                    and (stay.end is None or instant < stay.end)
                ):
                    continue
            elif declared_facility(chip, chip_stays, instant) != facility_id:
                continue
            peak_j = (
                reference_w if chip is None or chip.peak_power_w is None else chip.peak_power_w
            ) * seconds
            report = reports.get(chip_id)
            if report is None:
                chip_energy += peak_j  # silent: assume the worst it could draw
                continue
            chip_energy += report.energy_j
            if idle_util is not None and report.utilization <= idle_util:
                idle.append(chip_id)
                idle_headroom += max(0.0, peak_j - report.energy_j)
        factor = (1 + overhead) * site.pue
        explained = chip_energy * factor + site.non_it_load_kw * 1000 * seconds
        unexplained = metered - explained
        per_chip = reference_w * seconds * factor
        equivalents = unexplained / per_chip
        if unexplained > tolerance * metered and equivalents > min_eq:
            entry = excess[facility_id]
            entry.windows.append(window)
            entry.equivalents.append(equivalents)
            entry.evidence.extend(m.log_index for m in ms)
            if idle and idle_headroom * factor >= unexplained:
                entry.idle_chips.update(idle)

    ghosts: list[Finding] = []
    unders: list[Finding] = []
    for facility_id in sorted(excess):
        entry = excess[facility_id]
        site = snapshot.facilities[facility_id]
        start, end = entry.windows[0][0], entry.windows[-1][1]
        peak_eq = max(entry.equivalents)
        mean_eq = sum(entry.equivalents) / len(entry.equivalents)
        ghosts.append(
            make_finding(
                ghost,
                policy,
                kind="ghost_chips",
                subject_type="facility",
                subject_id=str(facility_id),
                facility_id=facility_id,
                country=site.country,
                window_start=start,
                window_end=end,
                summary=(
                    f"Facility {facility_id} ({site.country}) drew more energy than its declared "
                    f"chips explain in {len(entry.windows)} window(s) from {rfc3339(start)}: up to "
                    f"{peak_eq:.1f} chip-equivalents ({reference_w:g} W each, PUE {site.pue:g})."
                ),
                details={
                    "facility_id": facility_id,
                    "windows_observed": len(entry.windows),
                    "max_chip_equivalents": round(peak_eq, 2),
                    "mean_chip_equivalents": round(mean_eq, 2),
                    "pue": site.pue,
                    "non_it_load_kw": site.non_it_load_kw,
                    "host_overhead_fraction": overhead,
                    "tolerance_fraction": tolerance,
                    "reference_chip_power_w": reference_w,
                },
                evidence=entry.evidence,
            )
        )
        if under is not None and entry.idle_chips:
            unders.append(
                make_finding(
                    under,
                    policy,
                    kind="underreporting",
                    subject_type="facility",
                    subject_id=str(facility_id),
                    facility_id=facility_id,
                    country=site.country,
                    window_start=start,
                    window_end=end,
                    summary=(
                        f"At facility {facility_id}, {len(entry.idle_chips)} chip(s) claim to be "
                        f"idle while the meter shows {peak_eq:.1f} chip-equivalents of "
                        "unexplained energy, which they could draw if they were working."
                    ),
                    details={
                        "facility_id": facility_id,
                        "channel": "meter",
                        "idle_chip_ids": sorted(entry.idle_chips)[:100],
                        "idle_chip_count": len(entry.idle_chips),
                        "max_chip_equivalents": round(peak_eq, 2),
                        "idle_utilization": idle_util,
                    },
                    evidence=entry.evidence,
                )
            )
    return ghosts, unders
