"""Rebuild the verifier's input from the log alone, and re-run the verifier.

The registry runs the verifier over its database; each run is logged (kind ``verifier_run``)
with its ``as_of``, ``since``, policy and the log size its inputs were cut at. Here the same
:class:`verifier.facts.Snapshot` is rebuilt from the replayed log entries below that size and
:func:`verifier.engine.run` is called with the same built-in policy: the findings must be
identical, byte for byte in canonical JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from attestation.logentries import canonical_json
from audit.records import InstallationDecl, VerifierRun
from audit.replay import Replay
from verifier import engine
from verifier.errors import PolicyError
from verifier.facts import (
    ChipFact,
    ClusterNotificationFact,
    DeclaredClusterFact,
    FacilityFact,
    GpuAttestationFact,
    InstallationFact,
    LandmarkFact,
    LinkFact,
    MeterFact,
    MeterReadingFact,
    ReportFact,
    RttMeasurementFact,
    Snapshot,
    SubmissionFact,
)
from verifier.policy import load_builtin_policy

__all__ = ["FindingsCheck", "check_run", "snapshot_at"]


def snapshot_at(replay: Replay, run: VerifierRun) -> Snapshot:
    """The verifier's input as the registry saw it for ``run``: log entries below its size,
    filtered exactly as ``VerificationService.snapshot`` filters its tables."""
    cut, as_of, since = run.log_size, run.as_of, run.since
    facilities = {
        fid: FacilityFact(
            facility_id=f.facility_id,
            operator_id=f.operator_id,
            country=f.country,
            latitude=f.latitude,
            longitude=f.longitude,
            declared_power_kw=f.declared_power_kw,
            pue=f.pue,
            non_it_load_kw=f.non_it_load_kw,
            name=f.name,
        )
        for fid, f in replay.facilities.items()
        if f.index < cut
    }
    # Custody: a stay ends when the chip's next declared installation begins.
    stays: dict[str, list[InstallationDecl]] = {}
    for decl in replay.installations:
        if decl.index < cut:
            stays.setdefault(decl.chip_id, []).append(decl)
    custody: dict[str, InstallationDecl] = {}
    installations = []
    for chip_stays in stays.values():
        for decl, after in zip(chip_stays, [*chip_stays[1:], None], strict=True):
            if decl.installed_at >= as_of:
                break
            end = after.installed_at if after is not None else None
            removed = end if end is not None and end <= as_of else None
            installations.append(
                InstallationFact(
                    decl.chip_id, decl.facility_id, decl.installed_at, removed, decl.index
                )
            )
            if removed is None:
                custody[decl.chip_id] = decl
    allowed: dict[str, frozenset[str]] = {}
    for c in replay.conditions:
        if c.index < cut and c.effective_from <= as_of:
            allowed[c.chip_id] = (
                allowed[c.chip_id] & c.allowed if c.chip_id in allowed else c.allowed
            )
    retired: dict[str, datetime] = {}
    for st in replay.statuses:
        if st.index < cut and st.effective_at <= as_of:
            retired[st.chip_id] = min(retired.get(st.chip_id, st.effective_at), st.effective_at)
    chips = {}
    for chip in replay.chips.values():
        if chip.index >= cut:
            continue
        inst = custody.get(chip.chip_id)
        facility = facilities.get(inst.facility_id) if inst else None
        chips[chip.chip_id] = ChipFact(
            chip_id=chip.chip_id,
            model=chip.model,
            peak_ops=chip.peak_tflops_bf16 * 1e12,
            facility_id=inst.facility_id if inst else None,
            country=facility.country if facility else None,
            installed_at=inst.installed_at if inst else None,
            peak_power_w=chip.tdp_watts,
            vendor=chip.vendor,
            allowed_countries=allowed.get(chip.chip_id),
            operator_id=facility.operator_id if facility else None,
            retired_at=retired.get(chip.chip_id),
        )
    reports = [
        ReportFact(
            chip_id=r.report.chip_id,
            seq=r.report.seq,
            window_start=r.report.window_start,
            window_end=r.report.window_end,
            utilization=r.report.utilization,
            energy_j=r.report.energy_j,
            links=tuple(
                LinkFact(lt.peer, str(lt.link), lt.tx_bytes, lt.rx_bytes)
                for lt in r.report.interconnect
            ),
            log_index=r.index,
            facility_id=r.report.facility_id,
            digest=r.digest,
            received_at=replay.receipts.get(r.index),
            source=_source(r.source),
        )
        for r in replay.reports
        if r.index < cut
        and r.report.window_start < as_of
        and (since is None or r.report.window_end > since)
    ]
    submissions = [
        SubmissionFact(
            chip_id=s.report.chip_id,
            seq=s.report.seq,
            digest=s.digest,
            window_start=s.report.window_start,
            window_end=s.report.window_end,
            received_at=s.received_at,
            outcome=s.outcome,
            facility_id=s.report.facility_id,
            source=_source(s.operator_id),
            log_index=s.index,
            original_received_at=s.original_received_at,
        )
        for s in replay.rejected
        if s.index < cut
        and s.received_at < as_of
        and (since is None or s.report.window_end > since)
    ]
    budgets = {b.cluster_id: b.compute_budget_flop for b in replay.budgets if b.index < cut}
    notices: dict[int, list[ClusterNotificationFact]] = {}
    for n in replay.notifications:
        if n.index < cut and n.created_at < as_of:
            notices.setdefault(n.cluster_id, []).append(
                ClusterNotificationFact(n.threshold_flop, n.created_at, n.index, n.notified_at)
            )
    clusters = [
        DeclaredClusterFact(
            cluster_id=c.index,
            name=c.name,
            chip_ids=c.chip_ids,
            start=c.start,
            end=c.end,
            facility_id=c.facility_id,
            compute_budget_flop=budgets.get(c.index),
            notifications=tuple(notices.get(c.index, ())),
        )
        for c in replay.clusters
        if c.index < cut
    ]
    return Snapshot(
        chips=chips,
        reports=reports,
        clusters=clusters,
        facilities=facilities,
        installations=installations,
        submissions=submissions,
        landmarks={
            lm.landmark_id: LandmarkFact(lm.landmark_id, lm.latitude, lm.longitude, lm.name)
            for lm in replay.landmarks.values()
            if lm.index < cut
        },
        rtts=[
            RttMeasurementFact(m.landmark_id, m.chip_id, m.nonce, m.rtt_ms, m.measured_at, m.index)
            for m in replay.measurements
            if m.index < cut and m.measured_at < as_of and (since is None or m.measured_at >= since)
        ],
        meters={
            m.meter_id: MeterFact(m.meter_id, m.facility_id)
            for m in replay.meters.values()
            if m.index < cut
        },
        meter_readings=[
            MeterReadingFact(
                r.meter_id, r.facility_id, r.window_start, r.window_end, r.energy_j, r.index
            )
            for r in replay.readings
            if r.index < cut
            and r.window_start < as_of
            and r.window_end <= as_of
            and (since is None or r.window_end > since)
        ],
        gpu_attestations=[
            GpuAttestationFact(a.chip_id, a.purpose, a.hardware_id, a.verified_at, a.index)
            for a in replay.gpu_attestations
            if a.index < cut and a.verified_at < as_of
        ],
        period_start=since,
        period_end=as_of,
    )


def _source(operator_id: int | None) -> str | None:
    return None if operator_id is None else f"operator:{operator_id}"


@dataclass(frozen=True)
class FindingsCheck:
    """The outcome of re-deriving one run: published vs re-derived fingerprints."""

    run: VerifierRun
    derived: int
    missing: tuple[str, ...]  # re-derived but not published (suppressed findings)
    extra: tuple[str, ...]  # published but not re-derived (invented findings)
    changed: tuple[str, ...]  # same fingerprint, different content
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not (self.missing or self.extra or self.changed)


def check_run(replay: Replay, run: VerifierRun) -> FindingsCheck:
    """Re-derive ``run``'s findings from the log and compare them with the published ones."""
    try:
        policy = load_builtin_policy(run.policy_id)
    except PolicyError as exc:
        return FindingsCheck(run, 0, (), (), (), f"policy {run.policy_id!r}: {exc}")
    if policy.version != run.policy_version:
        return FindingsCheck(
            run,
            0,
            (),
            (),
            (),
            f"policy {run.policy_id} is version {policy.version} here, the run used "
            f"{run.policy_version}",
        )
    derived = {
        f.fingerprint: canonical_json(f.to_dict())
        for f in engine.run(snapshot_at(replay, run), policy, run.as_of)
    }
    published = {}
    for f in run.findings:
        published[str(f.get("fingerprint"))] = canonical_json(f)
    missing = tuple(sorted(set(derived) - set(published)))
    extra = tuple(sorted(set(published) - set(derived)))
    changed = tuple(sorted(k for k in set(derived) & set(published) if derived[k] != published[k]))
    return FindingsCheck(run, len(derived), missing, extra, changed)
