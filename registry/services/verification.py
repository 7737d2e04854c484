"""Runs the verifier over the registry's data and stores new findings.

The detection algorithms live in the pure ``verifier`` package; this module only loads facts
from the database, calls them, and records what they found (once per fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from attestation.logentries import VERIFIER_RUN, timestamp
from registry.db.models import Finding
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.repositories.findings import FindingRepository
from registry.repositories.reports import ReportRepository
from registry.services.log import LogAppender
from verifier import engine
from verifier.facts import ChipFact, DeclaredClusterFact, LinkFact, ReportFact, Snapshot
from verifier.findings import Finding as FindingValue
from verifier.policy import Policy

__all__ = ["VerificationRun", "VerificationService"]


@dataclass(frozen=True)
class VerificationRun:
    as_of: datetime
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
        self.log = LogAppender(session)
        self.clock = clock

    def snapshot(self, as_of: datetime, log_size: int | None = None) -> Snapshot:
        """Everything the verifier needs, as of ``as_of``: chips, custody, reports, clusters.

        With ``log_size``, only reports in the first ``log_size`` log entries count, so that a
        partner can rebuild the same snapshot from the log alone.
        """
        custody = {i.chip_id: i for i in self.facilities.all_current_installations()}
        chips = {}
        for chip in self.chips.all():
            inst = custody.get(chip.chip_id)
            chips[chip.chip_id] = ChipFact(
                chip_id=chip.chip_id,
                model=chip.model,
                peak_ops=chip.peak_tflops_bf16 * 1e12,
                facility_id=inst.facility_id if inst else None,
                country=inst.facility.country if inst else None,
                installed_at=inst.installed_at if inst else None,
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
            )
            for r in self.reports.in_period(None, as_of)
            if log_size is None or r.log_index < log_size
        ]
        clusters = [
            DeclaredClusterFact(
                cluster_id=c.id,
                name=c.name,
                chip_ids=frozenset(m.chip_id for m in c.members),
                start=c.start,
                end=c.end,
                facility_id=c.facility_id,
            )
            for c in self.facilities.clusters()
        ]
        return Snapshot(chips=chips, reports=reports, clusters=clusters)

    def run(self, policy: Policy, *, as_of: datetime | None = None) -> VerificationRun:
        """Judge every report up to ``as_of`` and store findings not seen before."""
        as_of = as_of or self.clock()
        # Not the append lock: a long run must not stall ingest. Reports are cut at this size.
        state = self.log.repo.state()
        log_size = state.size if state is not None else 0
        snap = self.snapshot(as_of, log_size)
        found = engine.run(snap, policy, as_of)
        # The run and everything it found go in the log, so partners can re-derive and compare.
        self.log.append_record(
            VERIFIER_RUN,
            {
                "as_of": timestamp(as_of),
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
        return VerificationRun(
            as_of=as_of,
            policy_id=policy.policy_id,
            policy_version=policy.version,
            reports_examined=len(snap.reports),
            findings=found,
            new_findings=len(new),
        )


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
