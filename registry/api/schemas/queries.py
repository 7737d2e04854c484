"""Inspector views: chips with custody and reports, facilities with chips, findings."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel

from registry.api.schemas.declarations import ChipPublic, FacilityPublic, InstallationPublic
from registry.services.findings import finding_document

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
    chip_count: int  # every chip installed there now, not just this page
    peak_tflops_bf16_total: float  # of all of them
    limit: int
    chips: list[ChipPublic]  # one page, in chip id order, from the first id after ``after``
    next_after: str | None  # pass as ``after`` for the next page; None on the last page


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
        """The public form of a stored finding: the one document webhooks and signed exports
        carry too (:func:`registry.services.findings.finding_document`)."""
        return cls.model_validate(finding_document(f))


class FindingsPage(BaseModel):
    findings: list[FindingPublic]
