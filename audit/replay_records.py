"""Replaying what the registry records itself: accounts, chips, verifier inputs and runs.

Each function takes the :class:`audit.replay.Replay` so far, the entry's log index and its
bytes; it parses them with the record's class (:mod:`attestation.records`, which refuses
anything but the canonical record) and checks the record against the log before it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from attestation import logentries as le
from attestation.certs import load_vendor_root, verify_chip_certificate
from attestation.keys import PublicKey
from attestation.records import (
    ChipStatusRecord,
    ClusterBudgetRecord,
    ClusterNotificationRecord,
    EnrollmentRecord,
    FacilityRecord,
    LandmarkRecord,
    MeterRecord,
    OperatorKeyRecord,
    OperatorRecord,
    TransferConditionRecord,
    VendorRecord,
    VerifierRunRecord,
)
from audit.records import ChipState, Logged
from verifier.errors import FactError
from verifier.facts import HostPowerFact

if TYPE_CHECKING:
    from audit.replay import Replay

__all__ = [
    "chip_status",
    "cluster_budget",
    "cluster_notification",
    "enrollment",
    "facility",
    "landmark",
    "meter",
    "operator",
    "operator_key",
    "transfer_condition",
    "vendor",
    "verifier_run",
]


# -- accounts ---------------------------------------------------------------------------------
def vendor(r: Replay, index: int, body: bytes) -> None:
    rec = VendorRecord.from_json(body)
    root = load_vendor_root(rec.root_certificate_pem.encode())
    if root.fingerprint != rec.fingerprint or root.name != rec.name:
        r.problem(index, le.VENDOR, "record does not match its root certificate")
    trusted = r.trusted_vendor_fingerprints
    if trusted is not None and root.fingerprint not in trusted:
        r.problem(index, le.VENDOR, f"vendor root {root.fingerprint} is not trusted")
    r.vendors[rec.vendor_id] = rec.root_certificate_pem
    r.vendor_names[rec.vendor_id] = rec.name


def operator(r: Replay, index: int, body: bytes) -> None:
    rec = OperatorRecord.from_json(body)
    if rec.operator_id in r.operators:
        r.problem(index, le.OPERATOR, f"operator {rec.operator_id} registered twice")
    r.set_operator_key(index, rec.operator_id, PublicKey.from_b64(rec.public_key))


def operator_key(r: Replay, index: int, body: bytes) -> None:
    rec = OperatorKeyRecord.from_json(body)
    current = r.operators.get(rec.operator_id)
    if current is None:
        raise ValueError(f"operator {rec.operator_id} is not in the log before")
    if current.to_b64() != rec.previous_public_key and not r.partial:
        r.problem(index, le.OPERATOR_KEY, "previous_public_key is not the key in force")
    key = PublicKey.from_b64(rec.public_key)
    if any(k.raw == key.raw for _, k in r.operator_keys[rec.operator_id]):
        r.problem(index, le.OPERATOR_KEY, f"operator {rec.operator_id} reuses a former key")
    r.set_operator_key(index, rec.operator_id, key)


def facility(r: Replay, index: int, body: bytes) -> None:
    rec = FacilityRecord.from_json(body)
    if rec.operator_id not in r.operators:
        r.problem(index, le.FACILITY, f"operator {rec.operator_id} is not in the log before")
    if rec.host_power is not None:
        # The record's shape is checked by its parser; the model's bounds by the verifier's.
        try:
            HostPowerFact.from_record(rec.host_power.to_dict())
        except FactError as exc:
            r.problem(index, le.FACILITY, str(exc))
            rec = dataclasses.replace(rec, host_power=None)
    r.facilities[rec.facility_id] = Logged(index, rec)


# -- chips ------------------------------------------------------------------------------------
def enrollment(r: Replay, index: int, body: bytes) -> None:
    rec = EnrollmentRecord.from_json(body)
    root_pem = r.vendors.get(rec.vendor_id)
    if root_pem is None:
        r.problem(index, le.ENROLLMENT, f"vendor {rec.vendor_id} is not in the log before")
        return
    endorsement = verify_chip_certificate(
        rec.certificate_pem.encode(), root_pem.encode(), at=rec.enrolled_at
    )
    r.signatures_checked += 1
    chip_id = rec.chip_id
    if (
        endorsement.chip_id != chip_id
        or endorsement.public_key.to_b64() != rec.public_key
        or endorsement.model != rec.model
    ):
        r.problem(index, le.ENROLLMENT, f"record of {chip_id} differs from its certificate")
    if chip_id in r.chips or endorsement.public_key.raw in r.chip_keys:
        r.problem(index, le.ENROLLMENT, f"chip {chip_id} or its key enrolled twice")
        return
    r.chip_keys.add(endorsement.public_key.raw)
    r.chips[chip_id] = ChipState(
        index,
        chip_id,
        endorsement.model,
        float(rec.peak_tflops_bf16),
        endorsement.public_key,
        None if rec.tdp_watts is None else float(rec.tdp_watts),
        r.vendor_names.get(rec.vendor_id),
    )


def chip_status(r: Replay, index: int, body: bytes) -> None:
    rec = ChipStatusRecord.from_json(body)
    chip = r.chips.get(rec.chip_id)
    if chip is None:
        raise ValueError(f"chip {rec.chip_id} is not enrolled before")
    at = rec.effective_at
    if chip.revoked_at is not None:
        r.problem(index, le.CHIP_STATUS, f"{chip.chip_id} was already revoked")
    if rec.status == "decommissioned":
        if chip.decommissioned_at is not None:
            r.problem(index, le.CHIP_STATUS, f"{chip.chip_id} decommissioned twice")
        chip.decommissioned_at = chip.decommissioned_at or at
    elif rec.status == "revoked":
        chip.revoked_at = chip.revoked_at or at
    else:
        raise ValueError(f"unknown chip status {rec.status!r}")
    r.statuses.append(Logged(index, rec))


# -- verifier runs and inputs -----------------------------------------------------------------
def verifier_run(r: Replay, index: int, body: bytes) -> None:
    r.runs.append(Logged(index, VerifierRunRecord.from_json(body)))


def transfer_condition(r: Replay, index: int, body: bytes) -> None:
    rec = TransferConditionRecord.from_json(body)
    if rec.chip_id not in r.chips:
        r.problem(index, le.TRANSFER_CONDITION, f"chip {rec.chip_id} is not enrolled before")
    r.conditions.append(Logged(index, rec))


def _cluster_ref(r: Replay, index: int, kind: str, cluster_id: int) -> None:
    if cluster_id not in r.cluster_ids:
        r.problem(index, kind, f"cluster {cluster_id} is not declared before")


def cluster_budget(r: Replay, index: int, body: bytes) -> None:
    rec = ClusterBudgetRecord.from_json(body)
    _cluster_ref(r, index, le.CLUSTER_BUDGET, rec.cluster_id)
    r.budgets.append(Logged(index, rec))


def cluster_notification(r: Replay, index: int, body: bytes) -> None:
    rec = ClusterNotificationRecord.from_json(body)
    _cluster_ref(r, index, le.CLUSTER_NOTIFICATION, rec.cluster_id)
    r.notifications.append(Logged(index, rec))


def _sensor_key(r: Replay, index: int, kind: str, b64: str) -> PublicKey:
    key = PublicKey.from_b64(b64)
    if key.raw in r.sensor_keys:
        r.problem(index, kind, "another landmark or meter holds this key")
    r.sensor_keys.add(key.raw)
    return key


def landmark(r: Replay, index: int, body: bytes) -> None:
    rec = LandmarkRecord.from_json(body)
    key = _sensor_key(r, index, le.LANDMARK, rec.public_key)
    if rec.landmark_id in r.landmarks:
        r.problem(index, le.LANDMARK, f"landmark {rec.landmark_id} registered twice")
    r.landmarks[rec.landmark_id] = Logged(index, rec)
    r.sensor_key_of[le.LANDMARK, rec.landmark_id] = key


def meter(r: Replay, index: int, body: bytes) -> None:
    rec = MeterRecord.from_json(body)
    key = _sensor_key(r, index, le.METER, rec.public_key)
    if rec.facility_id not in r.facilities:
        r.problem(index, le.METER, f"facility {rec.facility_id} is not in the log before")
    if rec.meter_id in r.meters:
        r.problem(index, le.METER, f"meter {rec.meter_id} registered twice")
    r.meters[rec.meter_id] = Logged(index, rec)
    r.sensor_key_of[le.METER, rec.meter_id] = key
