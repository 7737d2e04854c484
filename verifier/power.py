"""Facility power meters against the energy the declared chips reported.

Per facility and meter window, the energy the declared chips explain is

    explained = (chip energy + host energy) * PUE + non-IT load * seconds

where chip energy is the sum of their reported energy (peak energy for declared chips that did
not report) and host energy comes from the facility's declared host power model
(:class:`~verifier.facts.HostPowerFact`: per host of ``gpus_per_host`` slots, a constant
``idle_w + gpus_per_host * per_gpu_slot_w`` plus ``busy_w`` x its GPUs' mean utilization),
capped at ``max_host_w_per_gpu`` per declared chip so that an inflated declaration cannot hide
ghost chips. A facility that declared no host model gets the policy's fixed
``host_overhead_fraction`` of chip energy instead.

``excess = metered - explained``. Above ``tolerance_fraction`` of the metered energy plus the
host model's uncertainty (``host_model_uncertainty_fraction`` of the host energy, x PUE) *and*
above ``min_chip_equivalents`` chips (one chip-equivalent = ``reference_chip_power_w`` x
(1 + host overhead fraction) x PUE over the window), rule ``power.ghost_chips`` fires with the
excess in chip-equivalents. Rule ``chip.underreporting`` (meter side) fires at the same time
when chips claiming idle at that facility could, at their peak (and with their hosts busy),
account for the excess: either they lie about being idle, or ghost chips draw the power.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from itertools import compress, repeat
from operator import add, attrgetter, ge, is_not

from verifier._common import Window, declared_facility, make_finding
from verifier._index import SnapshotIndex
from verifier.facts import (
    ChipFact,
    FacilityFact,
    InstallationFact,
    MeterReadingFact,
    ReportFact,
    Snapshot,
)
from verifier.findings import Finding, rfc3339
from verifier.params import GhostChipsParams, UnderreportingParams
from verifier.rules import Rule, RuleContext

__all__ = ["GHOST_RULE_ID", "POWER", "UNDERREPORTING_RULE_ID"]

GHOST_RULE_ID = GhostChipsParams.rule_id
UNDERREPORTING_RULE_ID = UnderreportingParams.rule_id
_energy = attrgetter("energy_j")


@dataclass(slots=True)
class _Sums:
    """What the declared chips explain of one meter window, accumulated chip by chip."""

    instant: datetime
    seconds: float
    reports: dict[str, ReportFact]
    chip_energy: float = 0.0
    chips: int = 0
    """Declared chips counted (reporting or not): the host model's GPU slots."""
    utilization_sum: float = 0.0
    """Their utilizations added up (a silent chip counts as fully busy)."""
    idle: list[str] = field(default_factory=list)
    idle_headroom: float = 0.0


def _add_chips(
    snapshot: Snapshot,
    index: SnapshotIndex,
    sums_at: dict[int, list[_Sums]],
    reference_w: float,
    idle_util: float | None,
) -> None:
    """Add every chip declared at a metered facility at a meter window's start to that
    window's sums, in chip id order (so the float sums never depend on input order): its
    report's energy, or its peak energy if it sent none; and note idle-claiming chips.

    Most chips have one open installation, at the facility they are at now, begun before
    the facility's first meter window: a facility whose chips are all like that is summed
    with C-level map/reduce (the same additions, in the same order). Any other chip sends
    its facility down the chip-by-chip path."""
    chips = snapshot.chips
    single, several = index.stay_maps()
    ordered: list[str] = index.sorted_chip_ids()
    if not (single.keys() <= chips.keys() and several.keys() <= chips.keys()):
        ordered = sorted(set(chips).union(single, several))  # installations of unknown chips
    earliest = {f: min(sums.instant for sums in at) for f, at in sums_at.items()}
    simple: dict[int, list[str]] = {f: [] for f in sums_at}
    other: dict[int, list[str]] = defaultdict(list)
    single_get, simple_get = single.get, simple.get
    for chip_id, chip in zip(ordered, map(chips.get, ordered), strict=True):
        current = None if chip is None else chip.facility_id
        stay = single_get(chip_id)
        if stay is not None and stay.facility_id == current and stay.end is None:
            bucket = simple_get(current)
            if bucket is None:
                continue  # no meter there
            if stay.start <= earliest[current]:
                bucket.append(chip_id)
                continue
        stays = several.get(chip_id, ()) if stay is None else (stay,)
        for facility_id in _facilities(current, stays, sums_at):
            other[facility_id].append(chip_id)
    for facility_id, chip_ids in simple.items():
        if facility_id in other:
            merged = list(heapq.merge(chip_ids, other[facility_id]))
            for sums in sums_at[facility_id]:
                _add_one_by_one(
                    snapshot,
                    index,
                    facility_id,
                    merged,
                    sums,
                    reference_w=reference_w,
                    idle_util=idle_util,
                )
        elif chip_ids:
            for sums in sums_at[facility_id]:
                _add_all(chips, chip_ids, sums, reference_w, idle_util)


def _add_all(
    chips: Mapping[str, ChipFact],
    chip_ids: list[str],
    sums: _Sums,
    reference_w: float,
    idle_util: float | None,
) -> None:
    """The fast path: every chip is declared at the facility for the whole window."""
    seconds = sums.seconds
    found = list(map(sums.reports.get, chip_ids))
    if all(map(is_not, found, repeat(None))):
        energies = list(map(_energy, found))
    else:  # silent chips count at their peak
        energies = [
            r.energy_j if r is not None else _peak_w(chips.get(c), reference_w) * seconds
            for c, r in zip(chip_ids, found, strict=True)
        ]
    sums.chip_energy = reduce(add, energies, sums.chip_energy)
    utilization = [-1.0 if r is None else r.utilization for r in found]
    sums.chips += len(chip_ids)
    sums.utilization_sum = reduce(
        add, [1.0 if u < 0 else u for u in utilization], sums.utilization_sum
    )
    if idle_util is None:
        return
    for chip_id, report in compress(
        zip(chip_ids, found, strict=True), map(ge, repeat(idle_util), utilization)
    ):
        if report is None:
            continue
        peak_j = _peak_w(chips.get(chip_id), reference_w) * seconds
        sums.idle.append(chip_id)
        sums.idle_headroom += max(0.0, peak_j - report.energy_j)


def _add_one_by_one(
    snapshot: Snapshot,
    index: SnapshotIndex,
    facility_id: int,
    chip_ids: list[str],
    sums: _Sums,
    *,
    reference_w: float,
    idle_util: float | None,
) -> None:
    """The general path: check where each chip was declared at the window's start."""
    instant = sums.instant
    for chip_id in chip_ids:
        chip = snapshot.chips.get(chip_id)
        if declared_facility(chip, index.stays_of(chip_id), instant) != facility_id:
            continue
        peak_j = _peak_w(chip, reference_w) * sums.seconds
        report = sums.reports.get(chip_id)
        sums.chips += 1
        if report is None:
            sums.chip_energy += peak_j  # silent: assume the worst it could draw
            sums.utilization_sum += 1.0
            continue
        sums.chip_energy += report.energy_j
        sums.utilization_sum += report.utilization
        if idle_util is not None and report.utilization <= idle_util:
            sums.idle.append(chip_id)
            sums.idle_headroom += max(0.0, peak_j - report.energy_j)


def _host_details(site: FacilityFact) -> dict[str, float]:
    model = site.host_power
    assert model is not None
    return {
        "gpus_per_host": model.gpus_per_host,
        "idle_w": model.idle_w,
        "per_gpu_slot_w": model.per_gpu_slot_w,
        "busy_w": model.busy_w,
    }


def _peak_w(chip: ChipFact | None, reference_w: float) -> float:
    return reference_w if chip is None or chip.peak_power_w is None else chip.peak_power_w


def _facilities(
    current: int | None, stays: Sequence[InstallationFact], sums_at: dict[int, list[_Sums]]
) -> list[int]:
    """The metered facilities where a chip is or was declared, each once."""
    out = [current] if current is not None and current in sums_at else []
    for stay in stays:
        if stay.facility_id in sums_at and stay.facility_id not in out:
            out.append(stay.facility_id)
    return out


@dataclass(slots=True)
class _Excess:
    windows: list[Window] = field(default_factory=list)
    equivalents: list[float] = field(default_factory=list)
    evidence: list[int | None] = field(default_factory=list)
    idle_chips: set[str] = field(default_factory=set)
    host_w: list[float] = field(default_factory=list)


def _find_power_anomalies(ctx: RuleContext) -> list[Finding]:
    """Ghost-chip findings, then meter-side under-reporting findings, one per facility each
    (the second needs the first's excess: it is not judged while ``power.ghost_chips`` is
    disabled)."""
    ghost = ctx.settings(GhostChipsParams)
    under = ctx.settings(UnderreportingParams)
    snapshot, policy, index = ctx.snapshot, ctx.policy, ctx.index
    if ghost is None or not snapshot.meter_readings:
        return []
    overhead = ghost.params.host_overhead_fraction
    tolerance = ghost.params.tolerance_fraction
    min_eq = ghost.params.min_chip_equivalents
    reference_w = ghost.params.reference_chip_power_w
    host_uncertainty = ghost.params.host_model_uncertainty_fraction
    max_host_w = ghost.params.max_host_w_per_gpu
    idle_util = None if under is None else under.params.idle_utilization

    readings: dict[tuple[int, Window], list[MeterReadingFact]] = defaultdict(list)
    for m in snapshot.meter_readings:
        readings[(m.facility_id, (m.window_start, m.window_end))].append(m)
    meters: list[tuple[int, Window, list[MeterReadingFact], _Sums]] = []
    sums_at: dict[int, list[_Sums]] = defaultdict(list)
    for (facility_id, window), ms in sorted(readings.items()):
        if facility_id not in snapshot.facilities:
            continue
        sums = _Sums(
            window[0], (window[1] - window[0]).total_seconds(), index.window_reports(window)
        )
        meters.append((facility_id, window, ms, sums))
        sums_at[facility_id].append(sums)
    _add_chips(snapshot, index, sums_at, reference_w, idle_util)

    excess: dict[int, _Excess] = defaultdict(_Excess)
    for facility_id, window, ms, sums in meters:
        site = snapshot.facilities[facility_id]
        seconds = sums.seconds
        metered = sum(m.energy_j for m in sorted(ms, key=lambda m: m.meter_id))
        chip_energy, idle, idle_headroom = sums.chip_energy, sums.idle, sums.idle_headroom
        model = site.host_power
        if model is None:
            factor = (1 + overhead) * site.pue
            host_j = chip_energy * overhead
            slack = 0.0
            idle_factor = factor
            idle_busy_j = 0.0
        else:
            factor = site.pue
            host_w = min(model.watts(sums.chips, sums.utilization_sum), max_host_w * sums.chips)
            host_j = host_w * seconds
            chip_energy += host_j
            slack = host_uncertainty * host_j * site.pue
            # Idle-claiming chips that really worked would also have driven their hosts busy.
            idle_factor = site.pue
            idle_busy_j = model.busy_w * len(idle) / model.gpus_per_host * seconds
        explained = chip_energy * factor + site.non_it_load_kw * 1000 * seconds
        unexplained = metered - explained
        per_chip = reference_w * seconds * (1 + overhead) * site.pue
        equivalents = unexplained / per_chip
        if unexplained > tolerance * metered + slack and equivalents > min_eq:
            entry = excess[facility_id]
            entry.windows.append(window)
            entry.equivalents.append(equivalents)
            entry.evidence.extend(m.log_index for m in ms)
            entry.host_w.append(host_j / seconds)
            if idle and (idle_headroom + idle_busy_j) * idle_factor >= unexplained:
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
                    f"chips and hosts explain in {len(entry.windows)} window(s) from "
                    f"{rfc3339(start)}: up to {peak_eq:.1f} chip-equivalents ({reference_w:g} W "
                    f"each, PUE {site.pue:g}, host model: "
                    f"{'declared' if site.host_power else 'policy overhead fraction'})."
                ),
                details={
                    "facility_id": facility_id,
                    "windows_observed": len(entry.windows),
                    "max_chip_equivalents": round(peak_eq, 2),
                    "mean_chip_equivalents": round(mean_eq, 2),
                    "pue": site.pue,
                    "non_it_load_kw": site.non_it_load_kw,
                    "host_overhead_fraction": overhead,
                    "host_model": None if site.host_power is None else _host_details(site),
                    "host_w_max": round(max(entry.host_w), 1),
                    "host_model_uncertainty_fraction": host_uncertainty,
                    "max_host_w_per_gpu": max_host_w,
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
    return ghosts + unders


POWER = Rule(
    rule_ids=(GHOST_RULE_ID, UNDERREPORTING_RULE_ID),
    kinds=("ghost_chips", "underreporting"),
    find=_find_power_anomalies,
)
"""``power.ghost_chips`` and the meter side of ``chip.underreporting``: one pass over the
meter windows (the peer side is :data:`verifier.links.UNDERREPORTING_PEERS`)."""
