"""Inspector views: chips with custody and reports, facilities with chips, findings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from registry.api.schemas.declarations import ChipPublic, FacilityPublic, InstallationPublic

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


class FindingsPage(BaseModel):
    findings: list[FindingPublic]
