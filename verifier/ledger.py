"""The evidence ledger: every logged fact the verifier may judge, and the one snapshot of it.

The registry (from its tables), the partner's audit (from a replay of the log) and the fleet
simulator (from its signed bytes) each build a :class:`Ledger` of typed records, one per logged
entry, and call :func:`snapshot`. Everything that decides *what a verifier run sees* lives
here, once: the cut at a log size, the judged instant and period, custody (a stay ends when the
chip's next declared installation begins), transfer conditions, retirement, the latest budget
revision and the notices received. The three sources only translate their storage into records,
so the registry's findings and those a partner re-derives from the log agree by construction
(docs/PROTOCOL.md 9.2 is the contract for the cuts).

``log_index`` is the record's position in the transparency log; ``None`` marks a record from
before the registry logged that kind (migration 0005): it counts under every cut. Pure: no I/O,
no clock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from verifier.facts import (
    ChipFact,
    ClusterNotificationFact,
    DeclaredClusterFact,
    FacilityFact,
    GpuAttestationFact,
    InstallationFact,
    LandmarkFact,
    MeterFact,
    MeterReadingFact,
    ReportFact,
    RttMeasurementFact,
    Snapshot,
    SubmissionFact,
)

__all__ = [
    "BudgetRecord",
    "ChipRecord",
    "ChipStatusRecord",
    "ClusterRecord",
    "ConditionRecord",
    "FacilityRecord",
    "InstallationRecord",
    "LandmarkRecord",
    "Ledger",
    "MeterRecord",
    "NotificationRecord",
    "allowed_countries",
    "snapshot",
]


@dataclass(frozen=True, slots=True)
class ChipRecord:
    """An enrollment: the chip as its vendor endorsed it."""

    chip_id: str
    model: str
    peak_ops: float
    peak_power_w: float | None
    vendor: str | None
    log_index: int | None


@dataclass(frozen=True, slots=True)
class FacilityRecord:
    """A facility declaration (``facility`` record)."""

    facility: FacilityFact
    log_index: int | None


@dataclass(frozen=True, slots=True)
class InstallationRecord:
    """Custody of a chip passing to ``facility_id`` at ``installed_at``: an ``installation``
    declaration or a ``transfer`` signed by both operators."""

    chip_id: str
    facility_id: int
    installed_at: datetime
    log_index: int | None


@dataclass(frozen=True, slots=True)
class ConditionRecord:
    """A transfer condition: where the chip may be from ``effective_from`` on."""

    chip_id: str
    allowed: frozenset[str]
    effective_from: datetime
    log_index: int | None


@dataclass(frozen=True, slots=True)
class ChipStatusRecord:
    """A decommission or revocation, effective at the registry's receipt."""

    chip_id: str
    effective_at: datetime
    log_index: int | None


@dataclass(frozen=True, slots=True)
class ClusterRecord:
    """A cluster declaration (the registry's cluster id is its log index)."""

    cluster_id: int
    name: str
    chip_ids: frozenset[str]
    start: datetime
    end: datetime
    facility_id: int | None
    log_index: int | None


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    """One revision of a cluster's compute budget; the latest below the cut is in force."""

    cluster_id: int
    compute_budget_flop: float
    log_index: int | None


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A threshold notice, judged by ``received_at`` (the registry's receipt)."""

    cluster_id: int
    threshold_flop: float
    received_at: datetime
    notified_at: datetime | None
    log_index: int | None


@dataclass(frozen=True, slots=True)
class LandmarkRecord:
    landmark: LandmarkFact
    log_index: int | None


@dataclass(frozen=True, slots=True)
class MeterRecord:
    meter: MeterFact
    log_index: int | None


@dataclass(frozen=True, slots=True)
class Ledger:
    """Every logged fact, each with its log position; any order (:func:`snapshot` orders).

    Signed evidence is held as the verifier's own facts (they already carry their
    ``log_index``): accepted reports, kept rejected submissions, round trips, meter readings,
    GPU attestations. A source may leave out records it knows the cut or period excludes (the
    registry filters reports by period in SQL); :func:`snapshot` applies every filter again.
    """

    chips: Sequence[ChipRecord] = ()
    facilities: Sequence[FacilityRecord] = ()
    installations: Sequence[InstallationRecord] = ()
    conditions: Sequence[ConditionRecord] = ()
    statuses: Sequence[ChipStatusRecord] = ()
    clusters: Sequence[ClusterRecord] = ()
    budgets: Sequence[BudgetRecord] = ()
    notifications: Sequence[NotificationRecord] = ()
    landmarks: Sequence[LandmarkRecord] = ()
    meters: Sequence[MeterRecord] = ()
    reports: Sequence[ReportFact] = ()
    submissions: Sequence[SubmissionFact] = ()
    rtts: Sequence[RttMeasurementFact] = ()
    readings: Sequence[MeterReadingFact] = ()
    gpu_attestations: Sequence[GpuAttestationFact] = ()


def _log_order(log_index: int | None) -> int:
    return -1 if log_index is None else log_index


def _as_logged(
    reports: list[ReportFact], ledger: Ledger, facilities: dict[int, FacilityFact]
) -> list[ReportFact]:
    """Each report's ``source`` as the log shows it: the operator holding the chip (its
    latest installation or transfer in log order) when the report was logged. A usage report's
    entry is the chip's envelope alone, so the operator that delivered it is not in the log;
    the registry requires the custodian, or the previous one for its last windows, and a
    partner can only tell the custodian."""
    names: dict[int, str] = {}
    held: dict[str, tuple[list[int], list[str | None]]] = {}
    for inst in sorted(ledger.installations, key=lambda i: _log_order(i.log_index)):
        site = facilities.get(inst.facility_id)
        name = None
        if site is not None and site.operator_id is not None:
            name = names.setdefault(site.operator_id, f"operator:{site.operator_id}")
        indexes, sources = held.setdefault(inst.chip_id, ([], []))
        indexes.append(_log_order(inst.log_index))
        sources.append(name)
    out = []
    for r in reports:
        source = None
        chip = held.get(r.chip_id)
        if chip is not None:
            indexes, sources = chip
            index = -1 if r.log_index is None else r.log_index
            if len(indexes) == 1:  # most chips: one stay
                source = sources[0] if indexes[0] < index else None
            else:
                at = bisect_left(indexes, index)
                source = sources[at - 1] if at else None
        out.append(r if r.source == source else replace(r, source=source))
    return out


def allowed_countries(
    conditions: Iterable[ConditionRecord], as_of: datetime | None = None
) -> frozenset[str] | None:
    """Where a chip may be at ``as_of``: the intersection of every condition in force then
    (``effective_from <= as_of``); ``None`` when none restricts it."""
    allowed: frozenset[str] | None = None
    for c in conditions:
        if as_of is None or c.effective_from <= as_of:
            allowed = c.allowed if allowed is None else allowed & c.allowed
    return allowed


def snapshot(
    ledger: Ledger,
    *,
    as_of: datetime,
    since: datetime | None = None,
    cut: int | None = None,
) -> Snapshot:
    """What a verifier run judging ``[since, as_of)`` sees, using only the records among the
    first ``cut`` log entries (``None``: all of them). The cuts are docs/PROTOCOL.md 9.2."""

    def logged(log_index: int | None) -> bool:
        return cut is None or log_index is None or log_index < cut

    facilities = {
        r.facility.facility_id: r.facility for r in ledger.facilities if logged(r.log_index)
    }
    # Custody: a chip's stays in declared order; each ends when the next one begins.
    stays: dict[str, list[InstallationRecord]] = {}
    for inst in sorted(
        (i for i in ledger.installations if logged(i.log_index)),
        key=lambda i: (i.installed_at, _log_order(i.log_index)),
    ):
        stays.setdefault(inst.chip_id, []).append(inst)
    custody: dict[str, InstallationRecord] = {}
    installations = []
    for chip_stays in stays.values():
        for inst, after in zip(chip_stays, [*chip_stays[1:], None], strict=True):
            if inst.installed_at >= as_of:
                break  # declared after the judged instant (and so are the later ones)
            # The next stay ends this one only if it counts (begins before ``as_of``): a chip
            # is never left in nobody's custody at the instant the next stay begins.
            end = after.installed_at if after is not None else None
            removed = end if end is not None and end < as_of else None
            installations.append(
                InstallationFact(
                    inst.chip_id, inst.facility_id, inst.installed_at, removed, inst.log_index
                )
            )
            if removed is None:
                custody[inst.chip_id] = inst
    conditions: dict[str, list[ConditionRecord]] = {}
    for c in ledger.conditions:
        if logged(c.log_index):
            conditions.setdefault(c.chip_id, []).append(c)
    retired: dict[str, datetime] = {}
    for st in ledger.statuses:
        if logged(st.log_index) and st.effective_at <= as_of:
            retired[st.chip_id] = min(retired.get(st.chip_id, st.effective_at), st.effective_at)
    chips = {}
    for chip in ledger.chips:
        if not logged(chip.log_index):
            continue
        held = custody.get(chip.chip_id)
        site = facilities.get(held.facility_id) if held is not None else None
        chips[chip.chip_id] = ChipFact(
            chip_id=chip.chip_id,
            model=chip.model,
            peak_ops=chip.peak_ops,
            facility_id=held.facility_id if held is not None else None,
            country=site.country if site is not None else None,
            installed_at=held.installed_at if held is not None else None,
            peak_power_w=chip.peak_power_w,
            vendor=chip.vendor,
            allowed_countries=allowed_countries(conditions.get(chip.chip_id, ()), as_of),
            operator_id=site.operator_id if site is not None else None,
            retired_at=retired.get(chip.chip_id),
        )
    budgets: dict[int, float] = {}
    for b in sorted(ledger.budgets, key=lambda b: _log_order(b.log_index)):
        if logged(b.log_index):
            budgets[b.cluster_id] = b.compute_budget_flop
    notices: dict[int, list[ClusterNotificationFact]] = {}
    for n in sorted(ledger.notifications, key=lambda n: _log_order(n.log_index)):
        # Judged by receipt: a notice counts from when the registry got it, never earlier.
        if logged(n.log_index) and n.received_at < as_of:
            notices.setdefault(n.cluster_id, []).append(
                ClusterNotificationFact(n.threshold_flop, n.received_at, n.log_index, n.notified_at)
            )
    clusters = [
        DeclaredClusterFact(
            cluster_id=c.cluster_id,
            name=c.name,
            chip_ids=c.chip_ids,
            start=c.start,
            end=c.end,
            facility_id=c.facility_id,
            compute_budget_flop=budgets.get(c.cluster_id),
            notifications=tuple(notices.get(c.cluster_id, ())),
            log_index=c.log_index,
        )
        for c in ledger.clusters
        if logged(c.log_index)
    ]
    reports = [
        r
        for r in ledger.reports
        if logged(r.log_index)
        and r.window_start < as_of
        and (since is None or r.window_end > since)
    ]
    return Snapshot(
        chips=chips,
        # Reports by window time: a late delivery still counts for its window.
        reports=_as_logged(reports, ledger, facilities),
        clusters=clusters,
        facilities=facilities,
        installations=installations,
        # Evidence by receipt time.
        submissions=[
            s
            for s in ledger.submissions
            if logged(s.log_index)
            and s.received_at < as_of
            and (since is None or s.window_end > since)
        ],
        landmarks={
            r.landmark.landmark_id: r.landmark for r in ledger.landmarks if logged(r.log_index)
        },
        rtts=[
            m
            for m in ledger.rtts
            if logged(m.log_index)
            and m.measured_at < as_of
            and (since is None or m.measured_at >= since)
        ],
        meters={r.meter.meter_id: r.meter for r in ledger.meters if logged(r.log_index)},
        meter_readings=[
            m
            for m in ledger.readings
            if logged(m.log_index)
            and m.window_start < as_of
            and m.window_end <= as_of
            and (since is None or m.window_end > since)
        ],
        # The whole history (not just since ``since``): a lapse is judged from the last proof.
        gpu_attestations=[
            a for a in ledger.gpu_attestations if logged(a.log_index) and a.verified_at < as_of
        ],
        period_start=since,
        period_end=as_of,
    )
