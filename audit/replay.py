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
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from attestation import logentries as le
from attestation.certs import load_vendor_root, verify_chip_certificate
from attestation.dsse import Envelope, verify_envelope
from attestation.errors import AttestationError
from attestation.keys import PublicKey
from attestation.report import GENESIS_DIGEST, UsageReport, open_envelope

__all__ = [
    "ChipState",
    "ClusterDecl",
    "FacilityRec",
    "InstallationDecl",
    "LoggedReport",
    "Problem",
    "Replay",
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


@dataclass(slots=True)
class ChipState:
    index: int
    chip_id: str
    model: str
    peak_tflops_bf16: float
    public_key: PublicKey
    seq: int = 0
    digest: str = GENESIS_DIGEST
    window_end: datetime | None = None


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
    index: int
    report: UsageReport


@dataclass(frozen=True, slots=True)
class VerifierRun:
    index: int
    as_of: datetime
    policy_id: str
    policy_version: str
    log_size: int
    findings: list[dict[str, Any]]


def _time(value: object) -> datetime:
    """A declaration timestamp as the registry's schema accepts it (RFC 3339 with a zone)."""
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string, got {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no timezone")
    return parsed.astimezone(UTC)


@dataclass
class Replay:
    """The state rebuilt from the log so far, and the problems found on the way."""

    trusted_vendor_fingerprints: Collection[str] | None = None
    # A bundle holds a selection of entries: no contiguity, chains start where the bundle does.
    partial: bool = False
    problems: list[Problem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    vendors: dict[int, str] = field(default_factory=dict)  # id -> root PEM
    operators: dict[int, PublicKey] = field(default_factory=dict)
    facilities: dict[int, FacilityRec] = field(default_factory=dict)
    chips: dict[str, ChipState] = field(default_factory=dict)
    chip_keys: set[bytes] = field(default_factory=set)
    installed: set[str] = field(default_factory=set)
    chained: set[str] = field(default_factory=set)
    installations: list[InstallationDecl] = field(default_factory=list)
    clusters: list[ClusterDecl] = field(default_factory=list)
    reports: list[LoggedReport] = field(default_factory=list)
    runs: list[VerifierRun] = field(default_factory=list)
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

    def _operator(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.OPERATOR, body)
        self.operators[int(rec["operator_id"])] = PublicKey.from_b64(str(rec["public_key"]))

    def _facility(self, index: int, body: bytes) -> None:
        rec = le.parse_record(le.FACILITY, body)
        operator_id = int(rec["operator_id"])
        if operator_id not in self.operators:
            self.problem(index, "facility", f"operator {operator_id} is not in the log before")
        fid = int(rec["facility_id"])
        self.facilities[fid] = FacilityRec(index, fid, operator_id, str(rec["country"]))

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
        self.installed.add(chip_id)
        self.installations.append(
            InstallationDecl(index, chip_id, facility_id, _time(fields["installed_at"]))
        )

    def _cluster(self, index: int, body: bytes) -> None:
        fields, facility_id = self._declaration(index, le.CLUSTER, body)
        chip_ids = frozenset(str(c) for c in fields["chip_ids"])
        missing = sorted(c for c in chip_ids if c not in self.chips)
        if missing:
            self.problem(index, "cluster", f"chips not enrolled before: {', '.join(missing[:5])}")
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
        if report.seq != chip.seq + 1:
            self.problem(
                index,
                "sequence",
                f"{chip.chip_id}: seq {report.seq} follows {chip.seq} (gap, reuse or reorder)",
            )
        elif report.prev_digest != chip.digest:
            self.problem(index, "hash_chain", f"{chip.chip_id} seq {report.seq}: broken chain")
        elif chip.window_end is not None and report.window_start < chip.window_end:
            self.problem(index, "window", f"{chip.chip_id} seq {report.seq}: window overlaps")
        chip.seq, chip.digest, chip.window_end = report.seq, verified.digest, report.window_end
        self.reports.append(LoggedReport(index, report))


_HANDLERS = {
    le.VENDOR: Replay._vendor,
    le.OPERATOR: Replay._operator,
    le.FACILITY: Replay._facility,
    le.ENROLLMENT: Replay._enrollment,
    le.VERIFIER_RUN: Replay._verifier_run,
    le.INSTALLATION: Replay._installation,
    le.CLUSTER: Replay._cluster,
    le.USAGE_REPORT: Replay._usage_report,
}


def b64decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
