"""What a replay of the log learned: one record type per kind of logged fact, with its index.

:class:`audit.replay.Replay` fills these as it re-verifies entries; :mod:`audit.facts` turns
them into the verifier's input as of any log size. Plain values, no verification logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attestation.keys import PublicKey
from attestation.report import GENESIS_DIGEST, UsageReport

__all__ = [
    "BudgetRec",
    "ChipState",
    "ChipStatusRec",
    "ClusterDecl",
    "ConditionRec",
    "FacilityRec",
    "GpuAttestationRec",
    "InstallationDecl",
    "LandmarkRec",
    "LoggedMeasurement",
    "LoggedReading",
    "LoggedReport",
    "MeterRec",
    "NotificationRec",
    "Problem",
    "RejectedRec",
    "VerifierRun",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One discrepancy: where (log index, or None for the log as a whole), what, and why."""

    index: int | None
    check: str
    detail: str


@dataclass(frozen=True, slots=True)
class FacilityRec:
    index: int
    facility_id: int
    operator_id: int
    country: str
    name: str = ""
    latitude: float = 0.0
    longitude: float = 0.0
    declared_power_kw: float = 0.0
    pue: float = 1.0
    non_it_load_kw: float = 0.0
    host_power: dict[str, float] | None = None
    """The record's ``host_power`` object (``None`` when the facility declared none)."""


@dataclass(slots=True)
class ChipState:
    index: int
    chip_id: str
    model: str
    peak_tflops_bf16: float
    public_key: PublicKey
    tdp_watts: float | None = None
    vendor: str | None = None
    seq: int = 0
    digest: str = GENESIS_DIGEST
    window_end: datetime | None = None
    decommissioned_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class InstallationDecl:
    index: int
    chip_id: str
    facility_id: int
    installed_at: datetime


@dataclass(frozen=True, slots=True)
class ClusterDecl:
    index: int
    facility_id: int
    name: str
    chip_ids: frozenset[str]
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class LoggedReport:
    """An accepted report; ``source`` is its delivering operator (the chip's custodian at
    receipt, which the registry requires), ``digest`` its SHA-256 over the payload."""

    index: int
    report: UsageReport
    digest: str = ""
    source: int | None = None


@dataclass(frozen=True, slots=True)
class ConditionRec:
    index: int
    chip_id: str
    allowed: frozenset[str]
    effective_from: datetime


@dataclass(frozen=True, slots=True)
class BudgetRec:
    index: int
    cluster_id: int
    compute_budget_flop: float


@dataclass(frozen=True, slots=True)
class NotificationRec:
    index: int
    cluster_id: int
    threshold_flop: float
    created_at: datetime
    notified_at: datetime


@dataclass(frozen=True, slots=True)
class LandmarkRec:
    index: int
    landmark_id: int
    name: str
    latitude: float
    longitude: float
    public_key: PublicKey


@dataclass(frozen=True, slots=True)
class MeterRec:
    index: int
    meter_id: int
    facility_id: int
    public_key: PublicKey


@dataclass(frozen=True, slots=True)
class LoggedMeasurement:
    index: int
    landmark_id: int
    chip_id: str
    nonce: str
    rtt_ms: float
    measured_at: datetime


@dataclass(frozen=True, slots=True)
class LoggedReading:
    index: int
    meter_id: int
    facility_id: int
    window_start: datetime
    window_end: datetime
    energy_j: float


@dataclass(frozen=True, slots=True)
class RejectedRec:
    """A logged ``rejected_report``: the chip-signed report (signature re-verified) and the
    registry's account of its delivery (operator, receipt time, outcome)."""

    index: int
    report: UsageReport
    digest: str
    outcome: str
    operator_id: int | None
    received_at: datetime
    original_received_at: datetime | None = None  # the record's ``original.received_at``


@dataclass(frozen=True, slots=True)
class VerifierRun:
    index: int
    as_of: datetime
    since: datetime | None
    policy_id: str
    policy_version: str
    log_size: int
    findings: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ChipStatusRec:
    """A logged ``chip_status`` record: the chip left service (``decommissioned`` or
    ``revoked``) at ``effective_at``."""

    index: int
    chip_id: str
    status: str
    effective_at: datetime


@dataclass(frozen=True, slots=True)
class GpuAttestationRec:
    """A re-verified ``gpu_attestation`` record."""

    index: int
    chip_id: str
    purpose: str
    hardware_id: str
    verified_at: datetime
