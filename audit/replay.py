"""Replay the log, entry by entry, re-verifying everything the registry accepted.

:class:`Replay` is fed entries in log order. For each it re-checks what the registry checked
(signatures against the keys the log itself introduced: vendor roots, operator keys, endorsed
chip keys; certificate chains; hash chains and sequence numbers of every chip) and records the
facts the verifier needs, each with its log index, so :mod:`audit.facts` can rebuild the
verifier's input as of any log size. Problems are collected, never raised: an audit reports
every discrepancy it finds.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attestation import logentries as le
from attestation.certs import load_vendor_root, verify_chip_certificate
from attestation.chain import RejectionCode, judge
from attestation.dsse import Envelope, verify_envelope
from attestation.errors import AttestationError
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
from attestation.report import open_envelope
from attestation.timefmt import parse_declared_time
from attestation.transfer import open_transfer, verify_transfer
from audit.records import (
    BudgetRec,
    ChipState,
    ChipStatusRec,
    ClusterDecl,
    ConditionRec,
    FacilityRec,
    GpuAttestationRec,
    InstallationDecl,
    LandmarkRec,
    LoggedMeasurement,
    LoggedReading,
    LoggedReport,
    MeterRec,
    NotificationRec,
    Problem,
    RejectedRec,
    VerifierRun,
)
from verifier.errors import FactError
from verifier.facts import HostPowerFact

__all__ = ["Replay"]


def _time(value: object) -> datetime:
    """A declaration timestamp, by the rule the registry's request schemas use."""
    return parse_declared_time(value, "timestamp")


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
    facilities: dict[int, FacilityRec] = field(default_factory=dict)
    chips: dict[str, ChipState] = field(default_factory=dict)
    chip_keys: set[bytes] = field(default_factory=set)
    installed: set[str] = field(default_factory=set)
    chained: set[str] = field(default_factory=set)
    installations: list[InstallationDecl] = field(default_factory=list)
    clusters: list[ClusterDecl] = field(default_factory=list)
    reports: list[LoggedReport] = field(default_factory=list)
    runs: list[VerifierRun] = field(default_factory=list)
    vendor_names: dict[int, str] = field(default_factory=dict)
    custodian: dict[str, int] = field(default_factory=dict)  # chip -> operator, in log order
    location: dict[str, int] = field(default_factory=dict)  # chip -> facility, in log order
    accepted: dict[tuple[str, int], LoggedReport] = field(default_factory=dict)
    receipts: dict[int, datetime] = field(default_factory=dict)  # report index -> received_at
    conditions: list[ConditionRec] = field(default_factory=list)
    budgets: list[BudgetRec] = field(default_factory=list)
    notifications: list[NotificationRec] = field(default_factory=list)
    cluster_ids: set[int] = field(default_factory=set)
    landmarks: dict[int, LandmarkRec] = field(default_factory=dict)
    meters: dict[int, MeterRec] = field(default_factory=dict)
    sensor_keys: set[bytes] = field(default_factory=set)
    nonces: set[str] = field(default_factory=set)
    meter_ends: dict[int, datetime] = field(default_factory=dict)
    measurements: list[LoggedMeasurement] = field(default_factory=list)
    readings: list[LoggedReading] = field(default_factory=list)
    rejected: list[RejectedRec] = field(default_factory=list)
    statuses: list[ChipStatusRec] = field(default_factory=list)
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

    # -- registry records ------------------------------------------------------------------
    def _vendor(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.VENDOR, body)
        root = load_vendor_root(str(rec["root_certificate_pem"]).encode())
        if root.fingerprint != rec["fingerprint"] or root.name != rec["name"]:
            self.problem(index, "vendor", "record does not match its root certificate")
        trusted = self.trusted_vendor_fingerprints
        if trusted is not None and root.fingerprint not in trusted:
            self.problem(index, "vendor", f"vendor root {root.fingerprint} is not trusted")
        self.vendors[int(rec["vendor_id"])] = str(rec["root_certificate_pem"])
        self.vendor_names[int(rec["vendor_id"])] = str(rec["name"])

    def _operator(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.OPERATOR, body)
        operator_id = int(rec["operator_id"])
        if operator_id in self.operators:
            self.problem(index, le.OPERATOR, f"operator {operator_id} registered twice")
        self._set_operator_key(index, operator_id, PublicKey.from_b64(str(rec["public_key"])))

    def _operator_key(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.OPERATOR_KEY, body)
        operator_id = int(rec["operator_id"])
        current = self.operators.get(operator_id)
        if current is None:
            raise ValueError(f"operator {operator_id} is not in the log before")
        if current.to_b64() != rec["previous_public_key"] and not self.partial:
            self.problem(index, le.OPERATOR_KEY, "previous_public_key is not the key in force")
        key = PublicKey.from_b64(str(rec["public_key"]))
        if any(k.raw == key.raw for _, k in self.operator_keys[operator_id]):
            self.problem(index, le.OPERATOR_KEY, f"operator {operator_id} reuses a former key")
        self._set_operator_key(index, operator_id, key)

    def _set_operator_key(self, index: int, operator_id: int, key: PublicKey) -> None:
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

    def _facility(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.FACILITY, body)
        operator_id = int(rec["operator_id"])
        if operator_id not in self.operators:
            self.problem(index, "facility", f"operator {operator_id} is not in the log before")
        fid = int(rec["facility_id"])
        self.facilities[fid] = FacilityRec(
            index,
            fid,
            operator_id,
            str(rec["country"]),
            str(rec.get("name", "")),
            float(rec.get("latitude", 0.0)),
            float(rec.get("longitude", 0.0)),
            float(rec.get("declared_power_kw", 0.0)),
            float(rec.get("pue", 1.0)),
            float(rec.get("non_it_load_kw", 0.0)),
            self._host_power(index, rec.get("host_power")),
        )

    def _host_power(self, index: int, value: object) -> dict[str, float] | None:
        """A facility record's declared host power model, as the verifier will read it."""
        if value is None:
            return None
        try:
            if not isinstance(value, dict):
                raise FactError(f"host power must be an object, got {value!r}")
            HostPowerFact.from_record(value)
        except FactError as exc:
            self.problem(index, "facility", str(exc))
            return None
        return dict(value)

    def _enrollment(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.ENROLLMENT, body)
        vendor_id = int(rec["vendor_id"])
        root_pem = self.vendors.get(vendor_id)
        if root_pem is None:
            self.problem(index, "enrollment", f"vendor {vendor_id} is not in the log before")
            return
        at = le.parse_timestamp(str(rec["enrolled_at"]))
        endorsement = verify_chip_certificate(
            str(rec["certificate_pem"]).encode(), root_pem.encode(), at=at
        )
        self.signatures_checked += 1
        chip_id = str(rec["chip_id"])
        if (
            endorsement.chip_id != chip_id
            or endorsement.public_key.to_b64() != rec["public_key"]
            or endorsement.model != rec["model"]
        ):
            self.problem(index, "enrollment", f"record of {chip_id} differs from its certificate")
        if chip_id in self.chips or endorsement.public_key.raw in self.chip_keys:
            self.problem(index, "enrollment", f"chip {chip_id} or its key enrolled twice")
            return
        self.chip_keys.add(endorsement.public_key.raw)
        self.chips[chip_id] = ChipState(
            index,
            chip_id,
            endorsement.model,
            float(rec["peak_tflops_bf16"]),
            endorsement.public_key,
            None if rec.get("tdp_watts") is None else float(rec["tdp_watts"]),
            self.vendor_names.get(vendor_id),
        )

    def _verifier_run(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.VERIFIER_RUN, body)
        findings = rec["findings"]
        if not isinstance(findings, list):
            raise TypeError("findings must be a list")
        self.runs.append(
            VerifierRun(
                index,
                le.parse_timestamp(str(rec["as_of"])),
                None if rec.get("since") is None else le.parse_timestamp(str(rec["since"])),
                str(rec["policy_id"]),
                str(rec["policy_version"]),
                int(rec["log_size"]),
                findings,
            )
        )

    # -- signed declarations ----------------------------------------------------------------
    def _declaration(self, index: int, kind: str, body: bytes) -> tuple[dict[str, Any], int]:
        envelope = Envelope.from_json(body)
        if envelope.to_json() != body:
            raise ValueError("envelope is not in canonical JSON")
        fields = le.open_declaration(envelope, kind)
        facility = self.facilities.get(int(fields["facility_id"]))
        if facility is None:
            raise ValueError(f"facility {fields['facility_id']} is not in the log before")
        verify_envelope(envelope, self.operators[facility.operator_id])
        self.signatures_checked += 1
        return fields, facility.facility_id

    def _installation(self, index: int, body: bytes) -> None:
        fields, facility_id = self._declaration(index, le.INSTALLATION, body)
        chip_id = str(fields["chip_id"])
        if chip_id not in self.chips:
            self.problem(index, "installation", f"chip {chip_id} is not enrolled before")
        operator_id = self.facilities[facility_id].operator_id
        held_by = self.custodian.get(chip_id)
        if held_by is not None and held_by != operator_id and not self.partial:
            # Custody passes between operators only by a transfer both of them sign.
            self.problem(
                index,
                "installation",
                f"{chip_id} passes from operator {held_by} to {operator_id} without a transfer",
            )
        self._install(index, chip_id, facility_id, _time(fields["installed_at"]))

    def _install(self, index: int, chip_id: str, facility_id: int, at: datetime) -> None:
        self.installed.add(chip_id)
        self.custodian[chip_id] = self.facilities[facility_id].operator_id
        self.location[chip_id] = facility_id
        self.installations.append(InstallationDecl(index, chip_id, facility_id, at))

    def _transfer(self, index: int, body: bytes) -> None:
        envelope = _canonical_envelope(body)
        claimed = open_transfer(envelope)
        giving = self.facilities.get(claimed.from_facility_id)
        receiving = self.facilities.get(claimed.to_facility_id)
        if giving is None or receiving is None:
            raise ValueError("a facility of the transfer is not in the log before")
        if giving.operator_id == receiving.operator_id:
            self.problem(index, le.TRANSFER, "a transfer within one operator")
        transfer = verify_transfer(
            envelope, self.operators[giving.operator_id], self.operators[receiving.operator_id]
        )
        self.signatures_checked += 2
        chip_id = transfer.chip_id
        if chip_id not in self.chips:
            raise ValueError(f"chip {chip_id} is not enrolled before")
        if not self.partial and self.location.get(chip_id) != giving.facility_id:
            self.problem(
                index,
                le.TRANSFER,
                f"{chip_id} is not at the giving facility {giving.facility_id}",
            )
        self._install(index, chip_id, receiving.facility_id, transfer.transferred_at)

    def _cluster(self, index: int, body: bytes) -> None:
        fields, facility_id = self._declaration(index, le.CLUSTER, body)
        chip_ids = frozenset(str(c) for c in fields["chip_ids"])
        missing = sorted(c for c in chip_ids if c not in self.chips)
        if missing:
            self.problem(index, "cluster", f"chips not enrolled before: {', '.join(missing[:5])}")
        self.cluster_ids.add(index)  # a cluster's id is the log index of its declaration
        self.clusters.append(
            ClusterDecl(
                index,
                facility_id,
                str(fields["name"]),
                chip_ids,
                _time(fields["start"]),
                _time(fields["end"]),
            )
        )

    # -- chip evidence -----------------------------------------------------------------------
    def _usage_report(self, index: int, body: bytes) -> None:
        envelope = Envelope.from_json(body)
        if envelope.to_json() != body:
            raise ValueError("envelope is not in canonical JSON")
        opened = open_envelope(envelope)
        chip = self.chips.get(opened.claimed.chip_id)
        if chip is None:
            self.problem(index, "usage_report", f"chip {opened.claimed.chip_id} not enrolled")
            return
        if chip.chip_id not in self.installed:
            self.problem(index, "usage_report", f"chip {chip.chip_id} was never installed")
        verified = opened.verify(chip.public_key)
        self.signatures_checked += 1
        report = verified.report
        if self.partial and chip.chip_id not in self.chained:
            chip.seq, chip.digest = report.seq - 1, report.prev_digest
        self.chained.add(chip.chip_id)
        code = judge(chip, report, verified.digest, self._accepted_digest(chip.chip_id))
        if code is RejectionCode.BROKEN_HASH_CHAIN:
            self.problem(index, "hash_chain", f"{chip.chip_id} seq {report.seq}: broken chain")
        elif code is RejectionCode.WINDOW_OUT_OF_ORDER:
            self.problem(index, "window", f"{chip.chip_id} seq {report.seq}: window overlaps")
        elif code is not None:  # a replay, a reuse or a gap: logged off the chain
            self.problem(
                index,
                "sequence",
                f"{chip.chip_id}: seq {report.seq} follows {chip.seq} ({code})",
            )
        if chip.revoked_at is not None:
            self.problem(index, "usage_report", f"{chip.chip_id} was revoked before this report")
        elif chip.decommissioned_at is not None and report.window_end > chip.decommissioned_at:
            self.problem(
                index, "usage_report", f"{chip.chip_id} was decommissioned before this window ended"
            )
        chip.seq, chip.digest, chip.window_end = report.seq, verified.digest, report.window_end
        logged = LoggedReport(index, report, verified.digest, self.custodian.get(chip.chip_id))
        self.accepted.setdefault((chip.chip_id, report.seq), logged)
        self.reports.append(logged)

    def _accepted_digest(self, chip_id: str) -> Callable[[int], str | None]:
        def digest(seq: int) -> str | None:
            logged = self.accepted.get((chip_id, seq))
            return None if logged is None else logged.digest

        return digest

    def _chip_status(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.CHIP_STATUS, body)
        chip = self.chips.get(str(rec["chip_id"]))
        if chip is None:
            raise ValueError(f"chip {rec['chip_id']} is not enrolled before")
        status, at = str(rec["status"]), le.parse_timestamp(str(rec["effective_at"]))
        if chip.revoked_at is not None:
            self.problem(index, le.CHIP_STATUS, f"{chip.chip_id} was already revoked")
        if status == "decommissioned":
            if chip.decommissioned_at is not None:
                self.problem(index, le.CHIP_STATUS, f"{chip.chip_id} decommissioned twice")
            chip.decommissioned_at = chip.decommissioned_at or at
        elif status == "revoked":
            chip.revoked_at = chip.revoked_at or at
        else:
            raise ValueError(f"unknown chip status {status!r}")
        self.statuses.append(ChipStatusRec(index, chip.chip_id, status, at))

    # -- verifier inputs the registry records ------------------------------------------------
    def _transfer_condition(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.TRANSFER_CONDITION, body)
        chip_id = str(rec["chip_id"])
        if chip_id not in self.chips:
            self.problem(index, "transfer_condition", f"chip {chip_id} is not enrolled before")
        codes = rec["allowed_countries"]
        if not isinstance(codes, list):
            raise TypeError("allowed_countries must be a list")
        self.conditions.append(
            ConditionRec(
                index,
                chip_id,
                frozenset(str(c) for c in codes),
                le.parse_timestamp(str(rec["effective_from"])),
            )
        )

    def _cluster_ref(self, index: int, kind: str, rec: dict[str, Any]) -> int:
        cluster_id = int(rec["cluster_id"])
        if cluster_id not in self.cluster_ids:
            self.problem(index, kind, f"cluster {cluster_id} is not declared before")
        return cluster_id

    def _cluster_budget(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.CLUSTER_BUDGET, body)
        cluster_id = self._cluster_ref(index, le.CLUSTER_BUDGET, rec)
        self.budgets.append(BudgetRec(index, cluster_id, float(rec["compute_budget_flop"])))

    def _cluster_notification(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.CLUSTER_NOTIFICATION, body)
        cluster_id = self._cluster_ref(index, le.CLUSTER_NOTIFICATION, rec)
        self.notifications.append(
            NotificationRec(
                index,
                cluster_id,
                float(rec["threshold_flop"]),
                le.parse_timestamp(str(rec["created_at"])),
                le.parse_timestamp(str(rec["notified_at"])),
            )
        )

    def _sensor_key(self, index: int, kind: str, b64: object) -> PublicKey:
        key = PublicKey.from_b64(str(b64))
        if key.raw in self.sensor_keys:
            self.problem(index, kind, "another landmark or meter holds this key")
        self.sensor_keys.add(key.raw)
        return key

    def _landmark(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.LANDMARK, body)
        lid = int(rec["landmark_id"])
        key = self._sensor_key(index, le.LANDMARK, rec["public_key"])
        if lid in self.landmarks:
            self.problem(index, le.LANDMARK, f"landmark {lid} registered twice")
        self.landmarks[lid] = LandmarkRec(
            index, lid, str(rec["name"]), float(rec["latitude"]), float(rec["longitude"]), key
        )

    def _meter(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.METER, body)
        mid = int(rec["meter_id"])
        key = self._sensor_key(index, le.METER, rec["public_key"])
        facility_id = int(rec["facility_id"])
        if facility_id not in self.facilities:
            self.problem(index, le.METER, f"facility {facility_id} is not in the log before")
        if mid in self.meters:
            self.problem(index, le.METER, f"meter {mid} registered twice")
        self.meters[mid] = MeterRec(index, mid, facility_id, key)

    # -- sensor evidence ---------------------------------------------------------------------
    def _landmark_measurement(self, index: int, body: bytes) -> None:
        envelope = _canonical_envelope(body)
        claimed = open_measurement(envelope).landmark_id
        landmark = self.landmarks.get(claimed)
        if landmark is None:
            raise ValueError(f"landmark {claimed} is not registered before")
        m = verify_measurement(envelope, landmark.landmark_id, landmark.public_key).measurement
        self.signatures_checked += 1
        chip = self.chips.get(m.chip_id)
        if chip is None:
            raise ValueError(f"chip {m.chip_id} is not enrolled before")
        verify_challenge_answer(
            m.landmark_id, m.chip_id, m.nonce, m.chip_signature, chip.public_key
        )
        self.signatures_checked += 1
        if m.nonce in self.nonces:
            self.problem(index, le.LANDMARK_MEASUREMENT, f"nonce {m.nonce[:16]} answered twice")
        self.nonces.add(m.nonce)
        self.measurements.append(
            LoggedMeasurement(index, m.landmark_id, m.chip_id, m.nonce, m.rtt_ms, m.measured_at)
        )

    def _meter_reading(self, index: int, body: bytes) -> None:
        envelope = _canonical_envelope(body)
        claimed = open_reading(envelope).meter_id
        meter = self.meters.get(claimed)
        if meter is None:
            raise ValueError(f"meter {claimed} is not registered before")
        r = verify_reading(envelope, meter.meter_id, meter.public_key).reading
        self.signatures_checked += 1
        if r.facility_id != meter.facility_id:
            self.problem(
                index,
                le.METER_READING,
                f"meter {meter.meter_id} belongs to facility {meter.facility_id}, "
                f"the reading claims {r.facility_id}",
            )
        last_end = self.meter_ends.get(meter.meter_id)
        if last_end is not None and r.window_start < last_end:
            self.problem(index, le.METER_READING, f"meter {meter.meter_id}: window overlaps")
        self.meter_ends[meter.meter_id] = r.window_end
        self.readings.append(
            LoggedReading(
                index, meter.meter_id, r.facility_id, r.window_start, r.window_end, r.energy_j
            )
        )

    def _rejected_report(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.REJECTED_REPORT, body)
        raw = b64decode(str(rec["envelope"]))
        envelope = _canonical_envelope(raw)
        opened = open_envelope(envelope)
        chip = self.chips.get(opened.claimed.chip_id)
        if chip is None:
            raise ValueError(f"chip {opened.claimed.chip_id} is not enrolled before")
        verified = opened.verify(chip.public_key)
        self.signatures_checked += 1
        report, digest = verified.report, verified.digest
        if rec["digest"] != digest:
            self.problem(index, le.REJECTED_REPORT, "recorded digest is not the report's")
        outcome = str(rec["outcome"])
        received_at = le.parse_timestamp(str(rec["received_at"]))
        operator = rec["operator_id"]
        if operator is not None and int(operator) not in self.operators:
            self.problem(index, le.REJECTED_REPORT, f"operator {operator} is not in the log")
        accepted = self.accepted.get((report.chip_id, report.seq))
        original = rec["original"]
        original_at = None
        # A forbidden delivery names its original when it copies an accepted report.
        if outcome == RejectionCode.REPLAYED_REPORT or (
            outcome == RejectionCode.FORBIDDEN and original is not None
        ):
            if accepted is None or accepted.digest != digest:
                self.problem(
                    index,
                    le.REJECTED_REPORT,
                    f"{report.chip_id} seq {report.seq}: a 'replay' of no accepted report",
                )
            elif not isinstance(original, dict) or int(original["log_index"]) != accepted.index:
                self.problem(index, le.REJECTED_REPORT, "original does not name the report")
            else:
                at = original_at = le.parse_timestamp(str(original["received_at"]))
                if at > received_at:
                    self.problem(index, le.REJECTED_REPORT, "original received after its replay")
                known = self.receipts.setdefault(accepted.index, at)
                if known != at:
                    self.problem(index, le.REJECTED_REPORT, "two receipt times for one report")
        elif outcome == RejectionCode.SEQUENCE_REUSED and (
            accepted is None or accepted.digest == digest
        ):
            self.problem(
                index,
                le.REJECTED_REPORT,
                f"{report.chip_id} seq {report.seq}: no different accepted report to reuse",
            )
        self.rejected.append(
            RejectedRec(
                index,
                report,
                digest,
                outcome,
                None if operator is None else int(operator),
                received_at,
                original_at,
            )
        )

    def _gpu_attestation(self, index: int, body: bytes) -> None:
        """Re-verify logged GPU evidence: chain, nonce binding and signature, from the log."""
        rec = le.parse_record(le.GPU_ATTESTATION, body)
        chip_id = str(rec["chip_id"])
        chip = self.chips.get(chip_id)
        if chip is None:
            self.problem(index, "gpu_attestation", f"chip {chip_id} is not in the log before")
            return
        key = PublicKey.from_b64(str(rec["chip_public_key"]))
        if key != chip.public_key:
            self.problem(index, "gpu_attestation", f"evidence of {chip_id} binds another key")
            return
        bindings = {"enrollment": ENROLLMENT_BINDING, "reattestation": REATTESTATION_BINDING}
        binding = bindings.get(str(rec["purpose"]))
        if binding is None:
            self.problem(index, "gpu_attestation", f"unknown purpose {rec['purpose']!r}")
            return
        root = load_gpu_root(b64decode(str(rec["root_certificate"])))
        trusted = self.trusted_gpu_root_fingerprints
        if root.fingerprint != rec["root_fingerprint"] or (
            trusted is not None and root.fingerprint not in trusted
        ):
            self.problem(index, "gpu_attestation", f"GPU root {root.fingerprint} not trusted")
        registry_nonce = bytes.fromhex(str(rec["registry_nonce"]))
        verified_at = le.parse_timestamp(str(rec["verified_at"]))
        claims = verify_gpu_evidence(
            b64decode(str(rec["report"])),
            tuple(b64decode(str(c)) for c in rec["certificates"]),
            root=root,
            expected_nonce=bind_spdm_nonce(binding, key.raw, registry_nonce),
            at=verified_at,
        )
        self.signatures_checked += 1
        self.gpu_attestations.append(
            GpuAttestationRec(index, chip_id, str(rec["purpose"]), claims.hardware_id, verified_at)
        )
        if claims.hardware_id != rec["hardware_id"]:
            self.problem(index, "gpu_attestation", f"hardware id of {chip_id} differs")
        holder = self.gpu_hardware.setdefault(claims.hardware_id, chip_id)
        if holder != chip_id:
            self.problem(
                index, "gpu_attestation", f"GPU {claims.hardware_id} backs {holder} and {chip_id}"
            )
        if registry_nonce in self.gpu_nonces:
            self.problem(index, "gpu_attestation", "registry nonce answered twice")
        self.gpu_nonces.add(registry_nonce)


_HANDLERS = {
    le.VENDOR: Replay._vendor,
    le.OPERATOR: Replay._operator,
    le.FACILITY: Replay._facility,
    le.ENROLLMENT: Replay._enrollment,
    le.VERIFIER_RUN: Replay._verifier_run,
    le.INSTALLATION: Replay._installation,
    le.CLUSTER: Replay._cluster,
    le.USAGE_REPORT: Replay._usage_report,
    le.TRANSFER_CONDITION: Replay._transfer_condition,
    le.CLUSTER_BUDGET: Replay._cluster_budget,
    le.CLUSTER_NOTIFICATION: Replay._cluster_notification,
    le.LANDMARK: Replay._landmark,
    le.METER: Replay._meter,
    le.LANDMARK_MEASUREMENT: Replay._landmark_measurement,
    le.METER_READING: Replay._meter_reading,
    le.REJECTED_REPORT: Replay._rejected_report,
    le.CHIP_STATUS: Replay._chip_status,
    le.TRANSFER: Replay._transfer,
    le.OPERATOR_KEY: Replay._operator_key,
    le.GPU_ATTESTATION: Replay._gpu_attestation,
}


def _canonical_envelope(body: bytes) -> Envelope:
    envelope = Envelope.from_json(body)
    if envelope.to_json() != body:
        raise ValueError("envelope is not in canonical JSON")
    return envelope


def b64decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
