"""Rebuild the verifier's input from the log alone, and re-run the verifier.

The registry runs the verifier over its database; each run is logged (kind ``verifier_run``)
with its ``as_of``, ``since``, policy and the log size its inputs were cut at. Here the same
:class:`verifier.facts.Snapshot` is rebuilt from the replayed log entries below that size and
:func:`verifier.engine.run` is called with the same built-in policy: the findings must be
identical, byte for byte in canonical JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from attestation.logentries import canonical_json
from audit.records import Logged, R, VerifierRun
from audit.replay import Replay
from verifier import engine
from verifier.errors import PolicyError
from verifier.facts import (
    FacilityFact,
    GpuAttestationFact,
    HostPowerFact,
    LandmarkFact,
    LinkFact,
    MeterFact,
    MeterReadingFact,
    ReportFact,
    RttMeasurementFact,
    Snapshot,
    SubmissionFact,
)
from verifier.ledger import (
    BudgetRecord,
    ChipRecord,
    ChipStatusRecord,
    ClusterRecord,
    ConditionRecord,
    FacilityRecord,
    InstallationRecord,
    LandmarkRecord,
    Ledger,
    MeterRecord,
    NotificationRecord,
    snapshot,
)
from verifier.policy import load_builtin_policy

__all__ = ["FindingsCheck", "check_run", "ledger_of", "snapshot_at"]


def ledger_of(replay: Replay) -> Ledger:
    """The replayed log as evidence-ledger records (each with its log index)."""
    return Ledger(
        chips=[
            ChipRecord(
                c.chip_id, c.model, c.peak_tflops_bf16 * 1e12, c.tdp_watts, c.vendor, c.index
            )
            for c in replay.chips.values()
        ],
        facilities=[
            FacilityRecord(
                FacilityFact(
                    facility_id=f.facility_id,
                    operator_id=f.operator_id,
                    country=f.country,
                    # As the registry's float columns give them back (1 -> 1.0).
                    latitude=float(f.latitude),
                    longitude=float(f.longitude),
                    declared_power_kw=float(f.declared_power_kw),
                    pue=float(f.pue),
                    non_it_load_kw=float(f.non_it_load_kw),
                    name=f.name,
                    host_power=HostPowerFact.from_record(
                        None if f.host_power is None else f.host_power.to_dict()
                    ),
                ),
                index,
            )
            for index, f in _records(replay.facilities.values())
        ],
        installations=[
            InstallationRecord(d.chip_id, d.facility_id, d.installed_at, d.index)
            for d in replay.installations
        ],
        conditions=[
            ConditionRecord(c.chip_id, frozenset(c.allowed_countries), c.effective_from, index)
            for index, c in _records(replay.conditions)
        ],
        statuses=[
            ChipStatusRecord(s.chip_id, s.effective_at, index)
            for index, s in _records(replay.statuses)
        ],
        clusters=[
            ClusterRecord(
                index, c.name, frozenset(c.chip_ids), c.start, c.end, c.facility_id, index
            )
            for index, c in _records(replay.clusters)
        ],
        budgets=[
            BudgetRecord(b.cluster_id, float(b.compute_budget_flop), index)
            for index, b in _records(replay.budgets)
        ],
        notifications=[
            NotificationRecord(
                n.cluster_id, float(n.threshold_flop), n.created_at, n.notified_at, index
            )
            for index, n in _records(replay.notifications)
        ],
        landmarks=[
            LandmarkRecord(
                LandmarkFact(lm.landmark_id, float(lm.latitude), float(lm.longitude), lm.name),
                index,
            )
            for index, lm in _records(replay.landmarks.values())
        ],
        meters=[
            MeterRecord(MeterFact(m.meter_id, m.facility_id), index)
            for index, m in _records(replay.meters.values())
        ],
        reports=[
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
        ],
        submissions=[
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
        ],
        rtts=[
            RttMeasurementFact(m.landmark_id, m.chip_id, m.nonce, m.rtt_ms, m.measured_at, m.index)
            for m in replay.measurements
        ],
        readings=[
            MeterReadingFact(
                r.meter_id, r.facility_id, r.window_start, r.window_end, r.energy_j, r.index
            )
            for r in replay.readings
        ],
        gpu_attestations=[
            GpuAttestationFact(a.chip_id, a.purpose, a.hardware_id, a.verified_at, a.index)
            for a in replay.gpu_attestations
        ],
    )


def _records(logged: Iterable[Logged[R]]) -> list[tuple[int, R]]:
    return [(entry.index, entry.record) for entry in logged]


def snapshot_at(replay: Replay, run: VerifierRun, ledger: Ledger | None = None) -> Snapshot:
    """The verifier's input as the registry saw it for ``run``: the log's records below its
    size, cut by the same :func:`verifier.ledger.snapshot` the registry calls."""
    rec = run.record
    return snapshot(ledger or ledger_of(replay), as_of=rec.as_of, since=rec.since, cut=rec.log_size)


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


def check_run(replay: Replay, run: VerifierRun, ledger: Ledger | None = None) -> FindingsCheck:
    """Re-derive ``run``'s findings from the log and compare them with the published ones
    (``ledger``: :func:`ledger_of` the replay, when the caller checks several runs)."""
    rec = run.record
    try:
        policy = load_builtin_policy(rec.policy_id)
    except PolicyError as exc:
        return FindingsCheck(run, 0, (), (), (), f"policy {rec.policy_id!r}: {exc}")
    if policy.version != rec.policy_version:
        return FindingsCheck(
            run,
            0,
            (),
            (),
            (),
            f"policy {rec.policy_id} is version {policy.version} here, the run used "
            f"{rec.policy_version}",
        )
    derived = {
        f.fingerprint: canonical_json(f.to_dict())
        for f in engine.run(snapshot_at(replay, run, ledger), policy, rec.as_of)
    }
    published = {}
    for f in rec.findings:
        published[str(f.get("fingerprint"))] = canonical_json(f)
    missing = tuple(sorted(set(derived) - set(published)))
    extra = tuple(sorted(set(published) - set(derived)))
    changed = tuple(sorted(k for k in set(derived) & set(published) if derived[k] != published[k]))
    return FindingsCheck(run, len(derived), missing, extra, changed)
