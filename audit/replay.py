"""Replay the log, entry by entry, re-verifying everything the registry accepted.

:class:`Replay` is fed entries in log order. For each it re-checks what the registry checked
(signatures against the keys the log itself introduced: vendor roots, operator keys, endorsed
chip keys; certificate chains; hash chains and sequence numbers of every chip) and records the
facts the verifier needs, each with its log index, so :mod:`audit.facts` can rebuild the
verifier's input as of any log size. Problems are collected, never raised: an audit reports
every discrepancy it finds.

Each entry is parsed by the one strict parser of its kind (:mod:`attestation.records` for the
registry's records and the operators' declarations, :mod:`attestation.report`,
:mod:`attestation.landmark`, :mod:`attestation.meter`, :mod:`attestation.transfer` for signed
evidence); the checks per kind are in :mod:`audit.replay_records` (what the registry records)
and :mod:`audit.replay_evidence` (what chips, operators and sensors sign).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from attestation import logentries as le
from attestation.errors import AttestationError
from attestation.keys import PublicKey
from attestation.records import (
    ChipStatusRecord,
    ClusterBudgetRecord,
    ClusterDeclaration,
    ClusterNotificationRecord,
    FacilityRecord,
    LandmarkRecord,
    MeterRecord,
    TransferConditionRecord,
)
from audit import replay_evidence, replay_records
from audit.records import (
    ChipState,
    GpuAttestationRec,
    InstallationDecl,
    Logged,
    LoggedMeasurement,
    LoggedReading,
    LoggedReport,
    Problem,
    RejectedRec,
    VerifierRun,
)

__all__ = ["Replay"]


@dataclass
class Replay:
    """The state rebuilt from the log so far, and the problems found on the way."""

    trusted_vendor_fingerprints: Collection[str] | None = None
    # GPU device roots the partner trusts (SHA-256 of the DER root); None: report, not judge.
    trusted_gpu_root_fingerprints: Collection[str] | None = None
    # A bundle holds a selection of entries: no contiguity, chains start where the bundle does.
    partial: bool = False
    problems: list[Problem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    vendors: dict[int, str] = field(default_factory=dict)  # id -> root PEM
    operators: dict[int, PublicKey] = field(default_factory=dict)  # the key in force now
    # Each operator's keys with the log index from which each signs, in log order.
    operator_keys: dict[int, list[tuple[int, PublicKey]]] = field(default_factory=dict)
    facilities: dict[int, Logged[FacilityRecord]] = field(default_factory=dict)
    chips: dict[str, ChipState] = field(default_factory=dict)
    chip_keys: set[bytes] = field(default_factory=set)
    installed: set[str] = field(default_factory=set)
    chained: set[str] = field(default_factory=set)
    installations: list[InstallationDecl] = field(default_factory=list)
    clusters: list[Logged[ClusterDeclaration]] = field(default_factory=list)
    reports: list[LoggedReport] = field(default_factory=list)
    runs: list[VerifierRun] = field(default_factory=list)
    vendor_names: dict[int, str] = field(default_factory=dict)
    custodian: dict[str, int] = field(default_factory=dict)  # chip -> operator, in log order
    location: dict[str, int] = field(default_factory=dict)  # chip -> facility, in log order
    accepted: dict[tuple[str, int], LoggedReport] = field(default_factory=dict)
    receipts: dict[int, datetime] = field(default_factory=dict)  # report index -> received_at
    conditions: list[Logged[TransferConditionRecord]] = field(default_factory=list)
    budgets: list[Logged[ClusterBudgetRecord]] = field(default_factory=list)
    notifications: list[Logged[ClusterNotificationRecord]] = field(default_factory=list)
    cluster_ids: set[int] = field(default_factory=set)
    landmarks: dict[int, Logged[LandmarkRecord]] = field(default_factory=dict)
    meters: dict[int, Logged[MeterRecord]] = field(default_factory=dict)
    # A landmark's or a meter's registered key, parsed once: (kind, id) -> key.
    sensor_key_of: dict[tuple[str, int], PublicKey] = field(default_factory=dict)
    sensor_keys: set[bytes] = field(default_factory=set)
    nonces: set[str] = field(default_factory=set)
    meter_ends: dict[int, datetime] = field(default_factory=dict)
    measurements: list[LoggedMeasurement] = field(default_factory=list)
    readings: list[LoggedReading] = field(default_factory=list)
    rejected: list[RejectedRec] = field(default_factory=list)
    statuses: list[Logged[ChipStatusRecord]] = field(default_factory=list)
    gpu_hardware: dict[str, str] = field(default_factory=dict)  # hardware id -> chip id
    gpu_nonces: set[bytes] = field(default_factory=set)
    gpu_attestations: list[GpuAttestationRec] = field(default_factory=list)
    signatures_checked: int = 0
    next_index: int = 0

    def problem(self, index: int | None, check: str, detail: str) -> None:
        self.problems.append(Problem(index, check, detail))

    def feed(self, index: int, kind: str, body: bytes) -> None:
        """Replay one entry. Entries must come in index order, with no gaps."""
        if index != self.next_index and not self.partial:
            self.problem(index, "sequence", f"expected entry {self.next_index}, got {index}")
        self.next_index = index + 1
        self.counts[kind] += 1
        handler = _HANDLERS.get(kind)
        if handler is None:
            if kind in le.RESERVED_KINDS:
                self.counts["not_checked"] += 1
                return
            self.problem(index, "kind", f"unknown entry kind {kind!r}")
            return
        try:
            handler(self, index, body)
        except (AttestationError, ValueError, KeyError, TypeError) as exc:
            self.problem(index, kind, f"{type(exc).__name__}: {exc}")

    def set_operator_key(self, index: int, operator_id: int, key: PublicKey) -> None:
        """``key`` signs the operator's declarations logged after ``index``."""
        # Declarations after ``index`` are checked against this key (the replay runs in log
        # order); those before stay checked against the one in force at their position.
        self.operators[operator_id] = key
        self.operator_keys.setdefault(operator_id, []).append((index, key))

    def operator_key_at(self, operator_id: int, index: int) -> PublicKey | None:
        """The operator's key in force for an entry at log position ``index``."""
        found = None
        for since, key in self.operator_keys.get(operator_id, ()):
            if since < index:
                found = key
        return found

    def install(self, index: int, chip_id: str, facility_id: int, at: datetime) -> None:
        """Place ``chip_id`` at the facility from ``at``, in its operator's custody."""
        self.installed.add(chip_id)
        self.custodian[chip_id] = self.facilities[facility_id].record.operator_id
        self.location[chip_id] = facility_id
        self.installations.append(InstallationDecl(index, chip_id, facility_id, at))


_HANDLERS: dict[str, Callable[[Replay, int, bytes], None]] = {
    le.VENDOR: replay_records.vendor,
    le.OPERATOR: replay_records.operator,
    le.OPERATOR_KEY: replay_records.operator_key,
    le.FACILITY: replay_records.facility,
    le.ENROLLMENT: replay_records.enrollment,
    le.CHIP_STATUS: replay_records.chip_status,
    le.VERIFIER_RUN: replay_records.verifier_run,
    le.TRANSFER_CONDITION: replay_records.transfer_condition,
    le.CLUSTER_BUDGET: replay_records.cluster_budget,
    le.CLUSTER_NOTIFICATION: replay_records.cluster_notification,
    le.LANDMARK: replay_records.landmark,
    le.METER: replay_records.meter,
    le.REJECTED_REPORT: replay_evidence.rejected_report,
    le.GPU_ATTESTATION: replay_evidence.gpu_attestation,
    le.INSTALLATION: replay_evidence.installation,
    le.TRANSFER: replay_evidence.transfer,
    le.CLUSTER: replay_evidence.cluster,
    le.USAGE_REPORT: replay_evidence.usage_report,
    le.LANDMARK_MEASUREMENT: replay_evidence.landmark_measurement,
    le.METER_READING: replay_evidence.meter_reading,
}
