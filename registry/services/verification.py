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

from attestation.logentries import VERIFIER_RUN, timestamp
from registry.db.models import Chip, Finding, Installation, TransferCondition, VerifierProgress
from registry.errors import InvalidRequest
from registry.repositories.channels import ChannelRepository
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.repositories.findings import FindingRepository
from registry.repositories.gpu import GpuRepository
from registry.repositories.obligations import ObligationRepository
from registry.repositories.reports import ReportRepository
from registry.repositories.submissions import SubmissionRepository
from registry.services.log import LogAppender
from registry.services.obligations import allowed_countries
from registry.services.webhooks import WebhookService
from verifier import engine
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
from verifier.findings import Finding as FindingValue
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


class VerificationService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.reports = ReportRepository(session)
        self.findings = FindingRepository(session)
        self.channels = ChannelRepository(session)
        self.obligations = ObligationRepository(session)
        self.submissions = SubmissionRepository(session)
        self.gpu = GpuRepository(session)
        self.webhooks = WebhookService(session, clock)
        self.log = LogAppender(session)
        self.session = session
        self.clock = clock

    def snapshot(
        self, as_of: datetime, since: datetime | None = None, log_size: int | None = None
    ) -> Snapshot:
        """Everything the verifier needs over ``[since, as_of)``: chips, custody, reports,
        rejected submissions, clusters with budgets and notifications, landmarks and their
        round trips, meters and their readings.

        With ``log_size``, only reports in the first ``log_size`` log entries count, so that a
        partner can rebuild the same snapshot from the log alone.
        """

        def logged(log_index: int | None) -> bool:
            # Rows from before migration 0005 carry no log index: they are not in the log.
            return log_size is None or log_index is None or log_index < log_size

        facilities = {f.id: f for f in self.facilities.search()}
        custody: dict[str, Installation] = {}
        installations = []
        # A stay ends when the chip's next declared installation begins: rebuilt from the rows
        # below the cut (not ``removed_at``, which a declaration after the cut may have set).
        stays: dict[str, list[Installation]] = {}
        for row in self.facilities.all_installations():
            if logged(row.log_index):
                stays.setdefault(row.chip_id, []).append(row)
        for chip_rows in stays.values():
            for row, after in zip(chip_rows, [*chip_rows[1:], None], strict=True):
                if row.installed_at >= as_of:
                    break  # declared after the judged instant (and so are the later ones)
                end = after.installed_at if after is not None else None
                removed = end if end is not None and end <= as_of else None
                installations.append(
                    InstallationFact(
                        row.chip_id, row.facility_id, row.installed_at, removed, row.log_index
                    )
                )
                if removed is None:
                    custody[row.chip_id] = row
        conditions: dict[str, list[TransferCondition]] = {}
        for c in self.obligations.conditions():
            if logged(c.log_index):
                conditions.setdefault(c.chip_id, []).append(c)
        chips = {}
        for chip in self.chips.all():
            inst = custody.get(chip.chip_id)
            fac = facilities.get(inst.facility_id) if inst else None
            chips[chip.chip_id] = ChipFact(
                chip_id=chip.chip_id,
                model=chip.model,
                peak_ops=chip.peak_tflops_bf16 * 1e12,
                facility_id=inst.facility_id if inst else None,
                country=fac.country if fac else None,
                installed_at=inst.installed_at if inst else None,
                peak_power_w=chip.tdp_watts,
                vendor=chip.vendor.name,
                allowed_countries=allowed_countries(conditions.get(chip.chip_id, []), as_of),
                operator_id=fac.operator_id if fac else None,
                retired_at=_retired_at(chip, as_of, logged),
            )
        reports = [
            ReportFact(
                chip_id=r.chip_id,
                seq=r.seq,
                window_start=r.window_start,
                window_end=r.window_end,
                utilization=r.utilization,
                energy_j=r.energy_j,
                links=tuple(LinkFact(p, k, tx, rx) for p, k, tx, rx in json.loads(r.links_json)),
                log_index=r.log_index,
                facility_id=r.facility_claim,
                digest=r.digest,
                received_at=r.received_at,
                source=_source(r.source_operator_id),
            )
            for r in self.reports.in_period(since, as_of)
            if log_size is None or r.log_index < log_size
        ]
        submissions = [
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
            if logged(s.log_index)
        ]
        # The latest revision below the cut, as a partner replaying the log finds it.
        budgets = {
            b.cluster_id: b.compute_budget_flop
            for b in self.obligations.budget_revisions()
            if logged(b.log_index)
        }
        notices: dict[int, list[ClusterNotificationFact]] = {}
        for n in self.obligations.notifications():
            # Judged by receipt: a notice counts from when the registry got it, never earlier.
            if n.created_at < as_of and logged(n.log_index):
                notices.setdefault(n.cluster_id, []).append(
                    ClusterNotificationFact(
                        n.threshold_flop, n.created_at, n.log_index, n.notified_at
                    )
                )
        clusters = [
            DeclaredClusterFact(
                cluster_id=c.id,
                name=c.name,
                chip_ids=frozenset(m.chip_id for m in c.members),
                start=c.start,
                end=c.end,
                facility_id=c.facility_id,
                compute_budget_flop=budgets.get(c.id),
                notifications=tuple(notices.get(c.id, ())),
            )
            for c in self.facilities.clusters()
            if logged(c.id)  # a cluster's id is the log index of its declaration
        ]
        return Snapshot(
            chips=chips,
            reports=reports,
            clusters=clusters,
            facilities={
                f.id: FacilityFact(
                    facility_id=f.id,
                    operator_id=f.operator_id,
                    country=f.country,
                    latitude=f.latitude,
                    longitude=f.longitude,
                    declared_power_kw=f.declared_power_kw,
                    pue=f.pue,
                    non_it_load_kw=f.non_it_load_kw,
                    name=f.name,
                )
                for f in facilities.values()
            },
            installations=installations,
            submissions=submissions,
            landmarks={
                lm.id: LandmarkFact(lm.id, lm.latitude, lm.longitude, lm.name)
                for lm in self.channels.landmarks()
                if logged(lm.log_index)
            },
            rtts=[
                RttMeasurementFact(
                    m.landmark_id, m.chip_id, m.nonce, m.rtt_ms, m.measured_at, m.log_index
                )
                for m in self.channels.measurements(since, as_of)
                if logged(m.log_index)
            ],
            meters={
                m.id: MeterFact(m.id, m.facility_id)
                for m in self.channels.meters()
                if logged(m.log_index)
            },
            meter_readings=[
                MeterReadingFact(
                    r.meter_id, r.facility_id, r.window_start, r.window_end, r.energy_j, r.log_index
                )
                for r in self.channels.readings(since, as_of)
                if r.window_end <= as_of and logged(r.log_index)
            ],
            # The whole history (not just since ``since``): a lapse is judged from the last proof.
            gpu_attestations=[
                GpuAttestationFact(a.chip_id, a.purpose, a.hardware_id, a.verified_at, a.log_index)
                for a in self.gpu.attestations(as_of)
                if logged(a.log_index)
            ],
            period_start=since,
            period_end=as_of,
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
        # Not the append lock: a long run must not stall ingest. Reports are cut at this size.
        state = self.log.repo.state()
        log_size = state.size if state is not None else 0
        snap = self.snapshot(as_of, since, log_size)
        found = engine.run(snap, policy, as_of)
        # The run and everything it found go in the log, so partners can re-derive and compare.
        self.log.append_record(
            VERIFIER_RUN,
            {
                "as_of": timestamp(as_of),
                "since": None if since is None else timestamp(since),
                "policy_id": policy.policy_id,
                "policy_version": policy.version,
                "log_size": log_size,
                "findings": [f.to_dict() for f in found],
            },
            self.clock(),
        )
        known = self.findings.by_fingerprints([f.fingerprint for f in found])
        now = self.clock()
        new = []
        for f in found:
            row = known.get(f.fingerprint)
            if row is None:
                new.append(_to_row(f, now))
            else:
                # The same subject seen again (a cluster persisting): extend, don't duplicate.
                row.window_end = f.window_end
                row.summary = f.summary
                row.details_json = json.dumps(f.details, sort_keys=True)
                row.evidence_json = json.dumps(list(f.evidence))
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


def _retired_at(
    chip: Chip, as_of: datetime, logged: Callable[[int | None], bool]
) -> datetime | None:
    """When the chip left service (decommission or revocation, the earlier), as of ``as_of``
    and below the log cut; the audit derives the same from the ``chip_status`` records."""
    ends = [
        at
        for at, index in (
            (chip.decommissioned_at, chip.decommission_log_index),
            (chip.revoked_at, chip.revocation_log_index),
        )
        if at is not None and at <= as_of and logged(index)
    ]
    return min(ends, default=None)


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
