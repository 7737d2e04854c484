"""Runs the verifier over the registry's data and stores new findings.

The detection algorithms live in the pure ``verifier`` package; this module only loads facts
from the database, calls them, and records what they found (once per fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from attestation.records import VerifierRunRecord
from attestation.timefmt import timestamp
from registry.db.models import Finding, VerifierProgress
from registry.errors import InvalidRequest
from registry.repositories.chips import ChipRepository
from registry.repositories.conditions_budgets import ConditionsBudgetsRepository
from registry.repositories.facilities import FacilityRepository
from registry.repositories.findings import FindingRepository
from registry.repositories.gpu import GpuRepository
from registry.repositories.landmarks_meters import LandmarksMetersRepository
from registry.repositories.reports import ReportRepository
from registry.repositories.submissions import SubmissionRepository
from registry.services.conditions_budgets import parse_countries
from registry.services.log import LogAppender
from registry.services.webhooks import WebhookService
from verifier import engine
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
from verifier.findings import Finding as FindingValue
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
)
from verifier.ledger import snapshot as ledger_snapshot
from verifier.policy import Policy

__all__ = ["VerificationRun", "VerificationService"]


@dataclass(frozen=True)
class VerificationRun:
    as_of: datetime
    since: datetime | None
    policy_id: str
    policy_version: str
    reports_examined: int
    findings: list[FindingValue]
    new_findings: int
    stored: tuple[Finding, ...] = ()
    """The stored rows of ``findings``, in the same order: what the API, the webhooks and
    ``chipreg verify --json`` show (:func:`registry.services.findings.finding_document`)."""


class VerificationService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.reports = ReportRepository(session)
        self.findings = FindingRepository(session)
        self.landmarks_meters = LandmarksMetersRepository(session)
        self.conditions_budgets = ConditionsBudgetsRepository(session)
        self.submissions = SubmissionRepository(session)
        self.gpu = GpuRepository(session)
        self.webhooks = WebhookService(session, clock)
        self.log = LogAppender(session)
        self.session = session
        self.clock = clock

    def snapshot(
        self, as_of: datetime, since: datetime | None = None, log_size: int | None = None
    ) -> Snapshot:
        """Everything the verifier needs over ``[since, as_of)``: the registry's rows as
        evidence-ledger records, cut by :func:`verifier.ledger.snapshot`.

        With ``log_size``, only records in the first ``log_size`` log entries count, so that a
        partner rebuilds the same snapshot from the log alone.
        """
        return ledger_snapshot(self.ledger(as_of, since), as_of=as_of, since=since, cut=log_size)

    def ledger(self, as_of: datetime, since: datetime | None = None) -> Ledger:
        """The registry's tables as ledger records. Reports, submissions, round trips,
        readings and GPU evidence are read for the period only (an optimisation: the snapshot
        filters them again)."""
        chips = self.chips.all()
        return Ledger(
            chips=[
                ChipRecord(
                    chip.chip_id,
                    chip.model,
                    chip.peak_tflops_bf16 * 1e12,
                    chip.tdp_watts,
                    chip.vendor.name,
                    chip.enrollment_log_index,
                )
                for chip in chips
            ],
            facilities=[
                FacilityRecord(
                    FacilityFact(
                        facility_id=f.id,
                        operator_id=f.operator_id,
                        country=f.country,
                        latitude=f.latitude,
                        longitude=f.longitude,
                        declared_power_kw=f.declared_power_kw,
                        pue=f.pue,
                        non_it_load_kw=f.non_it_load_kw,
                        name=f.name,
                        host_power=HostPowerFact.from_record(f.host_power),
                    ),
                    f.log_index,
                )
                for f in self.facilities.search()
            ],
            installations=[
                InstallationRecord(row.chip_id, row.facility_id, row.installed_at, row.log_index)
                for row in self.facilities.all_installations()
            ],
            conditions=[
                ConditionRecord(
                    c.chip_id, parse_countries(c.allowed_countries), c.effective_from, c.log_index
                )
                for c in self.conditions_budgets.conditions()
            ],
            statuses=[
                ChipStatusRecord(chip.chip_id, at, index)
                for chip in chips
                for at, index in (
                    (chip.decommissioned_at, chip.decommission_log_index),
                    (chip.revoked_at, chip.revocation_log_index),
                )
                if at is not None
            ],
            clusters=[
                ClusterRecord(
                    c.id,
                    c.name,
                    frozenset(m.chip_id for m in c.members),
                    c.start,
                    c.end,
                    c.facility_id,
                    c.id,  # a cluster's id is the log index of its declaration
                )
                for c in self.facilities.clusters()
            ],
            budgets=[
                BudgetRecord(b.cluster_id, b.compute_budget_flop, b.log_index)
                for b in self.conditions_budgets.budget_revisions()
            ],
            notifications=[
                NotificationRecord(
                    n.cluster_id, n.threshold_flop, n.created_at, n.notified_at, n.log_index
                )
                for n in self.conditions_budgets.notifications()
            ],
            landmarks=[
                LandmarkRecord(
                    LandmarkFact(lm.id, lm.latitude, lm.longitude, lm.name), lm.log_index
                )
                for lm in self.landmarks_meters.landmarks()
            ],
            meters=[
                MeterRecord(MeterFact(m.id, m.facility_id), m.log_index)
                for m in self.landmarks_meters.meters()
            ],
            reports=[
                ReportFact(
                    chip_id=r.chip_id,
                    seq=r.seq,
                    window_start=r.window_start,
                    window_end=r.window_end,
                    utilization=r.utilization,
                    energy_j=r.energy_j,
                    links=tuple(
                        LinkFact(p, k, tx, rx) for p, k, tx, rx in json.loads(r.links_json)
                    ),
                    log_index=r.log_index,
                    facility_id=r.facility_claim,
                    digest=r.digest,
                    received_at=r.received_at,
                    source=_source(r.source_operator_id),
                )
                for r in self.reports.in_period(since, as_of)
            ],
            submissions=[
                SubmissionFact(
                    chip_id=s.chip_id,
                    seq=s.seq,
                    digest=s.digest,
                    window_start=s.window_start,
                    window_end=s.window_end,
                    received_at=s.received_at,
                    outcome=s.outcome,
                    facility_id=s.facility_claim,
                    source=_source(s.source_operator_id),
                    log_index=s.log_index,
                    original_received_at=s.original_received_at,
                )
                for s in self.submissions.in_period(since, as_of)
            ],
            rtts=[
                RttMeasurementFact(
                    m.landmark_id, m.chip_id, m.nonce, m.rtt_ms, m.measured_at, m.log_index
                )
                for m in self.landmarks_meters.measurements(since, as_of)
            ],
            readings=[
                MeterReadingFact(
                    r.meter_id, r.facility_id, r.window_start, r.window_end, r.energy_j, r.log_index
                )
                for r in self.landmarks_meters.readings(since, as_of)
            ],
            gpu_attestations=[
                GpuAttestationFact(a.chip_id, a.purpose, a.hardware_id, a.verified_at, a.log_index)
                for a in self.gpu.attestations(as_of)
            ],
        )

    def run(
        self,
        policy: Policy,
        *,
        as_of: datetime | None = None,
        since: datetime | None = None,
    ) -> VerificationRun:
        """Judge the period ``[since, as_of)`` (default: all history up to now), store findings
        not seen before, and queue them for the webhooks in the same transaction.

        ``as_of`` may not lie in the future (``as_of_in_future``): findings stored now must be
        true now, and a later run at that instant would judge facts not yet received.
        """
        now = self.clock()
        if as_of is not None and as_of > now:
            raise InvalidRequest(
                f"as_of {timestamp(as_of)} is after the registry's clock ({timestamp(now)})",
                code="as_of_in_future",
            )
        as_of = as_of or now
        # Not the append lock: a long run must not stall ingest. Reports are cut at this size:
        # the sequenced size (every entry below it is committed; the run's own record comes
        # after it, so a checkpoint that covers the run covers everything the run read).
        log_size = self.log.repo.sequenced_size()
        snap = self.snapshot(as_of, since, log_size)
        found = engine.run(snap, policy, as_of)
        # The run and everything it found go in the log, so partners can re-derive and compare.
        self.log.append_record(
            VerifierRunRecord(
                as_of=as_of,
                since=since,
                policy_id=policy.policy_id,
                policy_version=policy.version,
                log_size=log_size,
                findings=tuple(f.to_dict() for f in found),
            ),
            self.clock(),
        )
        known = self.findings.by_fingerprints([f.fingerprint for f in found])
        now = self.clock()
        new = []
        stored = []
        for f in found:
            row = known.get(f.fingerprint)
            if row is None:
                row = _to_row(f, now)
                new.append(row)
            else:
                # The same subject seen again (a cluster persisting): extend, don't duplicate.
                row.window_end = f.window_end
                row.summary = f.summary
                row.details_json = json.dumps(f.details, sort_keys=True)
                row.evidence_json = json.dumps(list(f.evidence))
            stored.append(row)
        self.findings.add_all(new)
        self.webhooks.enqueue_findings(new)
        return VerificationRun(
            as_of=as_of,
            since=since,
            policy_id=policy.policy_id,
            policy_version=policy.version,
            reports_examined=len(snap.reports),
            findings=found,
            new_findings=len(new),
            stored=tuple(stored),
        )

    def follow(
        self, policy: Policy, *, window: timedelta, settle: timedelta, max_windows: int = 96
    ) -> list[VerificationRun]:
        """Judge each reporting window that has closed (and settled) since the last call.

        Progress is kept per policy in ``verifier_progress``, so a restarted follower resumes
        where it stopped; after a long outage it catches up on at most ``max_windows``.
        """
        now = self.clock()
        latest = _floor(now - settle, window)
        progress = self.session.get(VerifierProgress, policy.policy_id)
        if progress is None:
            progress = VerifierProgress(
                policy_id=policy.policy_id, judged_until=latest - window, updated_at=now
            )
            self.session.add(progress)
        boundary = max(progress.judged_until + window, latest - window * (max_windows - 1))
        runs = []
        while boundary <= latest:
            runs.append(self.run(policy, as_of=boundary))
            progress.judged_until, progress.updated_at = boundary, now
            boundary += window
        self.session.flush()
        return runs


def _floor(t: datetime, window: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // window) * window


def _source(operator_id: int | None) -> str | None:
    return None if operator_id is None else f"operator:{operator_id}"


def _to_row(f: FindingValue, now: datetime) -> Finding:
    return Finding(
        fingerprint=f.fingerprint,
        rule_id=f.rule_id,
        rule_version=f.rule_version,
        policy_id=f.policy_id,
        policy_version=f.policy_version,
        kind=f.kind,
        severity=str(f.severity),
        status="open",
        subject_type=f.subject_type,
        subject_id=f.subject_id,
        facility_id=f.facility_id,
        country=f.country,
        window_start=f.window_start,
        window_end=f.window_end,
        summary=f.summary,
        details_json=json.dumps(f.details, sort_keys=True),
        evidence_json=json.dumps(list(f.evidence)),
        citation=f.citation,
        created_at=now,
    )
