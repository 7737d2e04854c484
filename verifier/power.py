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
from dataclasses import dataclass, field

from verifier._common import Window, declared_facility, installations_by_chip, make_finding
from verifier.facts import MeterReadingFact, ReportFact, Snapshot
from verifier.findings import Finding, rfc3339
from verifier.policy import Policy

__all__ = ["GHOST_RULE_ID", "UNDERREPORTING_RULE_ID", "find_power_anomalies"]

GHOST_RULE_ID = "power.ghost_chips"
UNDERREPORTING_RULE_ID = "chip.underreporting"


@dataclass(slots=True)
class _Excess:
    windows: list[Window] = field(default_factory=list)
    equivalents: list[float] = field(default_factory=list)
    evidence: list[int | None] = field(default_factory=list)
    idle_chips: set[str] = field(default_factory=set)


def find_power_anomalies(snapshot: Snapshot, policy: Policy) -> tuple[list[Finding], list[Finding]]:
    """(ghost-chip findings, meter-side under-reporting findings), one per facility each."""
    ghost = policy.rule(GHOST_RULE_ID)
    under = policy.rule(UNDERREPORTING_RULE_ID)
    if ghost is None or not snapshot.meter_readings:
        return [], []
    overhead = ghost.number("host_overhead_fraction")
    tolerance = ghost.number("tolerance_fraction")
    min_eq = ghost.number("min_chip_equivalents")
    reference_w = ghost.number("reference_chip_power_w")
    idle_util = None if under is None else under.number("idle_utilization")

    readings: dict[tuple[int, Window], list[MeterReadingFact]] = defaultdict(list)
    for m in snapshot.meter_readings:
        readings[(m.facility_id, (m.window_start, m.window_end))].append(m)
    wanted_windows = {w for _, w in readings}
    by_window: dict[Window, dict[str, ReportFact]] = defaultdict(dict)
    for r in snapshot.reports:
        w = (r.window_start, r.window_end)
        if w in wanted_windows:
            by_window[w][r.chip_id] = r
    stays = installations_by_chip(snapshot)
    # Chips declared at each metered facility (current or historical).
    candidates: dict[int, set[str]] = defaultdict(set)
    for chip_id, fact in snapshot.chips.items():
        if fact.facility_id is not None:
            candidates[fact.facility_id].add(chip_id)
    for chip_id, chip_stays in stays.items():
        for stay in chip_stays:
            candidates[stay.facility_id].add(chip_id)

    excess: dict[int, _Excess] = defaultdict(_Excess)
    for (facility_id, window), ms in sorted(readings.items()):
        site = snapshot.facilities.get(facility_id)
        if site is None:
            continue
        seconds = (window[1] - window[0]).total_seconds()
        metered = sum(m.energy_j for m in sorted(ms, key=lambda m: m.meter_id))
        reports = by_window.get(window, {})
        chip_energy = 0.0
        idle: list[str] = []
        idle_headroom = 0.0
        for chip_id in sorted(candidates.get(facility_id, ())):
            chip = snapshot.chips.get(chip_id)
            if declared_facility(chip, stays.get(chip_id), window[0]) != facility_id:
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
