"""Inspector views: chips with custody and reports, facilities with chips, findings."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel

from registry.api.schemas.declarations import ChipPublic, FacilityPublic, InstallationPublic

if TYPE_CHECKING:
    from registry.db.models import Finding

__all__ = ["ChipDetail", "FacilityDetail", "FindingPublic", "FindingsPage", "ReportSummary"]


class ReportSummary(BaseModel):
    seq: int
    digest: str
    window_start: datetime
    window_end: datetime
    utilization: float
    energy_j: float
    peers: int
    log_index: int


class ChipDetail(BaseModel):
    chip: ChipPublic
    vendor: str
    current_installation: InstallationPublic | None
    facility: FacilityPublic | None
    custody: list[InstallationPublic]
    latest_reports: list[ReportSummary]


class FacilityDetail(BaseModel):
    facility: FacilityPublic
    operator: str
    chip_count: int
    peak_tflops_bf16_total: float
    chips: list[ChipPublic]


class FindingPublic(BaseModel):
    id: int
    fingerprint: str
    rule_id: str
    rule_version: int
    policy_id: str
    policy_version: str
    kind: str
    severity: str
    status: str
    subject_type: str
    subject_id: str
    facility_id: int | None
    country: str | None
    window_start: datetime | None
    window_end: datetime | None
    summary: str
    details: dict[str, Any]
    evidence: list[int]
    citation: str
    created_at: datetime

    @classmethod
    def from_row(cls, f: Finding) -> Self:
        """The public form of a stored finding (details and evidence decoded)."""
        return cls(
            id=f.id,
            fingerprint=f.fingerprint,
            rule_id=f.rule_id,
            rule_version=f.rule_version,
            policy_id=f.policy_id,
            policy_version=f.policy_version,
            kind=f.kind,
            severity=f.severity,
            status=f.status,
            subject_type=f.subject_type,
            subject_id=f.subject_id,
            facility_id=f.facility_id,
            country=f.country,
            window_start=f.window_start,
            window_end=f.window_end,
            summary=f.summary,
            details=json.loads(f.details_json),
            evidence=json.loads(f.evidence_json),
            citation=f.citation,
            created_at=f.created_at,
        )


class FindingsPage(BaseModel):
    findings: list[FindingPublic]
