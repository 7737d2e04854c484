"""Replaying signed evidence: operators' declarations, chips' reports, sensors' readings.

Each function takes the :class:`audit.replay.Replay` so far, the entry's log index and its
bytes, verifies every signature against the key the log introduced before it, and checks the
chain rules the registry applied (:func:`attestation.chain.judge`). The two registry records
that carry signed evidence (``rejected_report``, ``gpu_attestation``) are here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from attestation import logentries as le
from attestation.chain import RejectionCode, judge
from attestation.dsse import Envelope, verify_envelope
from attestation.gpu import (
    ENROLLMENT_BINDING,
    REATTESTATION_BINDING,
    bind_spdm_nonce,
    load_gpu_root,
    verify_gpu_evidence,
)
from attestation.keys import PublicKey
from attestation.landmark import open_measurement, verify_challenge_answer, verify_measurement
from attestation.meter import open_reading, verify_reading
from attestation.records import (
    ClusterDeclaration,
    GpuAttestationRecord,
    InstallationDeclaration,
    RejectedReportRecord,
)
from attestation.report import open_envelope
from attestation.transfer import open_transfer, verify_transfer
from audit.records import (
    GpuAttestationRec,
    Logged,
    LoggedMeasurement,
    LoggedReading,
    LoggedReport,
    RejectedRec,
)

if TYPE_CHECKING:
    from audit.replay import Replay

__all__ = [
    "cluster",
    "gpu_attestation",
    "installation",
    "landmark_measurement",
    "meter_reading",
    "rejected_report",
    "transfer",
    "usage_report",
]


def canonical_envelope(body: bytes) -> Envelope:
    """The envelope logged as ``body``, which must be its canonical JSON."""
    envelope = Envelope.from_json(body)
    if envelope.to_json() != body:
        raise ValueError("envelope is not in canonical JSON")
    return envelope


# -- operators' declarations ------------------------------------------------------------------
D = TypeVar("D", InstallationDeclaration, ClusterDeclaration)


def _declaration(r: Replay, body: bytes, cls: type[D]) -> D:
    """The declaration, once its signature verifies under its facility operator's key."""
    envelope = canonical_envelope(body)
    declared = cls.from_envelope(envelope)
    facility = r.facilities.get(declared.facility_id)
    if facility is None:
        raise ValueError(f"facility {declared.facility_id} is not in the log before")
    verify_envelope(envelope, r.operators[facility.record.operator_id])
    r.signatures_checked += 1
    return declared


def installation(r: Replay, index: int, body: bytes) -> None:
    declared = _declaration(r, body, InstallationDeclaration)
    chip_id = declared.chip_id
    if chip_id not in r.chips:
        r.problem(index, le.INSTALLATION, f"chip {chip_id} is not enrolled before")
    operator_id = r.facilities[declared.facility_id].record.operator_id
    held_by = r.custodian.get(chip_id)
    if held_by is not None and held_by != operator_id and not r.partial:
        # Custody passes between operators only by a transfer both of them sign.
        r.problem(
            index,
            le.INSTALLATION,
            f"{chip_id} passes from operator {held_by} to {operator_id} without a transfer",
        )
    r.install(index, chip_id, declared.facility_id, declared.installed_at)


def transfer(r: Replay, index: int, body: bytes) -> None:
    envelope = canonical_envelope(body)
    claimed = open_transfer(envelope)
    giving = r.facilities.get(claimed.from_facility_id)
    receiving = r.facilities.get(claimed.to_facility_id)
    if giving is None or receiving is None:
        raise ValueError("a facility of the transfer is not in the log before")
    giver, receiver = giving.record.operator_id, receiving.record.operator_id
    if giver == receiver:
        r.problem(index, le.TRANSFER, "a transfer within one operator")
    moved = verify_transfer(envelope, r.operators[giver], r.operators[receiver])
    r.signatures_checked += 2
    chip_id = moved.chip_id
    if chip_id not in r.chips:
        raise ValueError(f"chip {chip_id} is not enrolled before")
    if not r.partial and r.location.get(chip_id) != claimed.from_facility_id:
        r.problem(
            index,
            le.TRANSFER,
            f"{chip_id} is not at the giving facility {claimed.from_facility_id}",
        )
    r.install(index, chip_id, claimed.to_facility_id, moved.transferred_at)


def cluster(r: Replay, index: int, body: bytes) -> None:
    declared = _declaration(r, body, ClusterDeclaration)
    missing = sorted(c for c in set(declared.chip_ids) if c not in r.chips)
    if missing:
        r.problem(index, le.CLUSTER, f"chips not enrolled before: {', '.join(missing[:5])}")
    r.cluster_ids.add(index)  # a cluster's id is the log index of its declaration
    r.clusters.append(Logged(index, declared))


# -- chip evidence ----------------------------------------------------------------------------
def usage_report(r: Replay, index: int, body: bytes) -> None:
    opened = open_envelope(canonical_envelope(body))
    chip = r.chips.get(opened.claimed.chip_id)
    if chip is None:
        r.problem(index, le.USAGE_REPORT, f"chip {opened.claimed.chip_id} not enrolled")
        return
    if chip.chip_id not in r.installed:
        r.problem(index, le.USAGE_REPORT, f"chip {chip.chip_id} was never installed")
    verified = opened.verify(chip.public_key)
    r.signatures_checked += 1
    report = verified.report
    if r.partial and chip.chip_id not in r.chained:
        chip.seq, chip.digest = report.seq - 1, report.prev_digest
    r.chained.add(chip.chip_id)
    code = judge(chip, report, verified.digest, _accepted_digest(r, chip.chip_id))
    if code is RejectionCode.BROKEN_HASH_CHAIN:
        r.problem(index, "hash_chain", f"{chip.chip_id} seq {report.seq}: broken chain")
    elif code is RejectionCode.WINDOW_OUT_OF_ORDER:
        r.problem(index, "window", f"{chip.chip_id} seq {report.seq}: window overlaps")
    elif code is not None:  # a replay, a reuse or a gap: logged off the chain
        r.problem(
            index,
            "sequence",
            f"{chip.chip_id}: seq {report.seq} follows {chip.seq} ({code})",
        )
    if chip.revoked_at is not None:
        r.problem(index, le.USAGE_REPORT, f"{chip.chip_id} was revoked before this report")
    elif chip.decommissioned_at is not None and report.window_end > chip.decommissioned_at:
        r.problem(
            index, le.USAGE_REPORT, f"{chip.chip_id} was decommissioned before this window ended"
        )
    chip.seq, chip.digest, chip.window_end = report.seq, verified.digest, report.window_end
    logged = LoggedReport(index, report, verified.digest, r.custodian.get(chip.chip_id))
    r.accepted.setdefault((chip.chip_id, report.seq), logged)
    r.reports.append(logged)


def _accepted_digest(r: Replay, chip_id: str) -> Callable[[int], str | None]:
    def digest(seq: int) -> str | None:
        logged = r.accepted.get((chip_id, seq))
        return None if logged is None else logged.digest

    return digest


def rejected_report(r: Replay, index: int, body: bytes) -> None:
    rec = RejectedReportRecord.from_json(body)
    opened = open_envelope(canonical_envelope(rec.envelope))
    chip = r.chips.get(opened.claimed.chip_id)
    if chip is None:
        raise ValueError(f"chip {opened.claimed.chip_id} is not enrolled before")
    verified = opened.verify(chip.public_key)
    r.signatures_checked += 1
    report, digest = verified.report, verified.digest
    if rec.digest != digest:
        r.problem(index, le.REJECTED_REPORT, "recorded digest is not the report's")
    received_at, original = rec.received_at, rec.original
    if rec.operator_id is not None and rec.operator_id not in r.operators:
        r.problem(index, le.REJECTED_REPORT, f"operator {rec.operator_id} is not in the log")
    accepted = r.accepted.get((report.chip_id, report.seq))
    original_at = None
    # A forbidden delivery names its original when it copies an accepted report.
    if rec.outcome == RejectionCode.REPLAYED_REPORT or (
        rec.outcome == RejectionCode.FORBIDDEN and original is not None
    ):
        if accepted is None or accepted.digest != digest:
            r.problem(
                index,
                le.REJECTED_REPORT,
                f"{report.chip_id} seq {report.seq}: a 'replay' of no accepted report",
            )
        elif original is None or original.log_index != accepted.index:
            r.problem(index, le.REJECTED_REPORT, "original does not name the report")
        else:
            at = original_at = original.received_at
            if at > received_at:
                r.problem(index, le.REJECTED_REPORT, "original received after its replay")
            known = r.receipts.setdefault(accepted.index, at)
            if known != at:
                r.problem(index, le.REJECTED_REPORT, "two receipt times for one report")
    elif rec.outcome == RejectionCode.SEQUENCE_REUSED and (
        accepted is None or accepted.digest == digest
    ):
        r.problem(
            index,
            le.REJECTED_REPORT,
            f"{report.chip_id} seq {report.seq}: no different accepted report to reuse",
        )
    r.rejected.append(
        RejectedRec(index, report, digest, rec.outcome, rec.operator_id, received_at, original_at)
    )


def gpu_attestation(r: Replay, index: int, body: bytes) -> None:
    """Re-verify logged GPU evidence: chain, nonce binding and signature, from the log."""
    rec = GpuAttestationRecord.from_json(body)
    chip_id = rec.chip_id
    chip = r.chips.get(chip_id)
    if chip is None:
        r.problem(index, le.GPU_ATTESTATION, f"chip {chip_id} is not in the log before")
        return
    key = PublicKey.from_b64(rec.chip_public_key)
    if key != chip.public_key:
        r.problem(index, le.GPU_ATTESTATION, f"evidence of {chip_id} binds another key")
        return
    bindings = {"enrollment": ENROLLMENT_BINDING, "reattestation": REATTESTATION_BINDING}
    binding = bindings.get(rec.purpose)
    if binding is None:
        r.problem(index, le.GPU_ATTESTATION, f"unknown purpose {rec.purpose!r}")
        return
    root = load_gpu_root(rec.root_certificate)
    trusted = r.trusted_gpu_root_fingerprints
    if root.fingerprint != rec.root_fingerprint or (
        trusted is not None and root.fingerprint not in trusted
    ):
        r.problem(index, le.GPU_ATTESTATION, f"GPU root {root.fingerprint} not trusted")
    registry_nonce = bytes.fromhex(rec.registry_nonce)
    claims = verify_gpu_evidence(
        rec.report,
        rec.certificates,
        root=root,
        expected_nonce=bind_spdm_nonce(binding, key.raw, registry_nonce),
        at=rec.verified_at,
    )
    r.signatures_checked += 1
    r.gpu_attestations.append(
        GpuAttestationRec(index, chip_id, rec.purpose, claims.hardware_id, rec.verified_at)
    )
    if claims.hardware_id != rec.hardware_id:
        r.problem(index, le.GPU_ATTESTATION, f"hardware id of {chip_id} differs")
    holder = r.gpu_hardware.setdefault(claims.hardware_id, chip_id)
    if holder != chip_id:
        r.problem(
            index, le.GPU_ATTESTATION, f"GPU {claims.hardware_id} backs {holder} and {chip_id}"
        )
    if registry_nonce in r.gpu_nonces:
        r.problem(index, le.GPU_ATTESTATION, "registry nonce answered twice")
    r.gpu_nonces.add(registry_nonce)


# -- sensor evidence --------------------------------------------------------------------------
def landmark_measurement(r: Replay, index: int, body: bytes) -> None:
    envelope = canonical_envelope(body)
    claimed = open_measurement(envelope).landmark_id
    key = r.sensor_key_of.get((le.LANDMARK, claimed))
    if key is None:
        raise ValueError(f"landmark {claimed} is not registered before")
    m = verify_measurement(envelope, claimed, key).measurement
    r.signatures_checked += 1
    chip = r.chips.get(m.chip_id)
    if chip is None:
        raise ValueError(f"chip {m.chip_id} is not enrolled before")
    verify_challenge_answer(m.landmark_id, m.chip_id, m.nonce, m.chip_signature, chip.public_key)
    r.signatures_checked += 1
    if m.nonce in r.nonces:
        r.problem(index, le.LANDMARK_MEASUREMENT, f"nonce {m.nonce[:16]} answered twice")
    r.nonces.add(m.nonce)
    r.measurements.append(
        LoggedMeasurement(index, m.landmark_id, m.chip_id, m.nonce, m.rtt_ms, m.measured_at)
    )


def meter_reading(r: Replay, index: int, body: bytes) -> None:
    envelope = canonical_envelope(body)
    claimed = open_reading(envelope).meter_id
    meter = r.meters.get(claimed)
    key = r.sensor_key_of.get((le.METER, claimed))
    if meter is None or key is None:
        raise ValueError(f"meter {claimed} is not registered before")
    reading = verify_reading(envelope, claimed, key).reading
    r.signatures_checked += 1
    facility_id = meter.record.facility_id
    if reading.facility_id != facility_id:
        r.problem(
            index,
            le.METER_READING,
            f"meter {claimed} belongs to facility {facility_id}, "
            f"the reading claims {reading.facility_id}",
        )
    last_end = r.meter_ends.get(claimed)
    if last_end is not None and reading.window_start < last_end:
        r.problem(index, le.METER_READING, f"meter {claimed}: window overlaps")
    r.meter_ends[claimed] = reading.window_end
    r.readings.append(
        LoggedReading(
            index,
            claimed,
            reading.facility_id,
            reading.window_start,
            reading.window_end,
            reading.energy_j,
        )
    )
