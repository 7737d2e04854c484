"""What a replay of the log learned: each logged fact with its index.

:class:`audit.replay.Replay` fills these as it re-verifies entries; :mod:`audit.facts` turns
them into the verifier's input as of any log size. Plain values, no verification logic.

A registry record or a declaration is kept as its typed class from :mod:`attestation.records`
(the one parser of the log) in :class:`Logged`; the classes below hold what the replay derived
beyond a record's fields: a chip's chain state, a placement from an installation or a transfer,
verified reports and sensor evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from attestation.keys import PublicKey
from attestation.records import JsonFields, VerifierRunRecord
from attestation.report import GENESIS_DIGEST, UsageReport

__all__ = [
    "ChipState",
    "GpuAttestationRec",
    "InstallationDecl",
    "Logged",
    "LoggedMeasurement",
    "LoggedReading",
    "LoggedReport",
    "Problem",
    "RejectedRec",
    "VerifierRun",
]

R = TypeVar("R", bound=JsonFields)


@dataclass(frozen=True, slots=True)
class Logged(Generic[R]):
    """A parsed registry record or declaration and the log index it was logged at."""

    index: int
    record: R


VerifierRun = Logged[VerifierRunRecord]


@dataclass(frozen=True, slots=True)
class Problem:
    """One discrepancy: where (log index, or None for the log as a whole), what, and why."""

    index: int | None
    check: str
    detail: str


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
class LoggedReport:
    """An accepted report; ``source`` is its delivering operator (the chip's custodian at
    receipt, which the registry requires), ``digest`` its SHA-256 over the payload."""

    index: int
    report: UsageReport
    digest: str = ""
    source: int | None = None


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
class GpuAttestationRec:
    """A re-verified ``gpu_attestation`` record."""

    index: int
    chip_id: str
    purpose: str
    hardware_id: str
    verified_at: datetime
