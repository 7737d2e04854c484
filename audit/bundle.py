"""Signed audit bundles: a facility's or a country's log entries for a period, verifiable offline.

A bundle is a DSSE envelope signed by the log's own Ed25519 key, payload type
:data:`BUNDLE_PAYLOAD_TYPE`, whose payload is canonical JSON::

    {"type": "chipreg.dev/audit-bundle/v1", "origin": ..., "scope": {...},
     "created_at": ..., "checkpoint": "<cosigned checkpoint note>",
     "entries": [{"index": n, "kind": k, "body": base64, "proof": [base64, ...]}, ...]}

Each entry carries its RFC 6962 inclusion proof against the checkpoint, so nothing in it has to
be taken on the registry's word: the checkpoint is checked against the log key and the witness
quorum, every proof against the checkpoint, and the entries are replayed (certificates,
operator-signed declarations, chip-signed reports, hash chains within the bundle).

The selection: every vendor, operator and facility record; enrollments, installations of chips
ever installed in scope and cluster declarations at facilities in scope; the chips' reports
whose window overlaps the period; verifier runs judged within the period.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attestation import logentries as le
from attestation import merkle
from attestation._json import loads_strict
from attestation.dsse import Envelope, sign_envelope, verify_envelope
from attestation.errors import AttestationError, FormatError
from attestation.keys import PrivateKey
from attestation.records import (
    ChipStatusRecord,
    ClusterDeclaration,
    EnrollmentRecord,
    FacilityRecord,
    InstallationDeclaration,
    VerifierRunRecord,
)
from attestation.transfer import open_transfer
from audit.core import AuditReport, TrustPolicy, check_checkpoint
from audit.replay import Replay

__all__ = [
    "BUNDLE_PAYLOAD_TYPE",
    "BUNDLE_TYPE",
    "BundleEntry",
    "BundleResult",
    "Scope",
    "build_bundle",
    "select_records",
    "verify_bundle",
]

BUNDLE_PAYLOAD_TYPE = "application/vnd.chipreg.audit-bundle+json"
BUNDLE_TYPE = "chipreg.dev/audit-bundle/v1"
# Operator keys too: a later declaration in the bundle may be signed by a rotated key.
_ALWAYS = (le.VENDOR, le.OPERATOR, le.OPERATOR_KEY, le.FACILITY)


@dataclass(frozen=True)
class Scope:
    """Whose entries (one facility, or every facility of a country) over which period."""

    facility_id: int | None = None
    country: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if (self.facility_id is None) == (self.country is None):
            raise FormatError("a bundle scope names exactly one of facility_id or country")

    def to_dict(self) -> dict[str, Any]:
        return {
            "facility_id": self.facility_id,
            "country": self.country,
            "start": None if self.start is None else le.timestamp(self.start),
            "end": None if self.end is None else le.timestamp(self.end),
        }

    def describe(self) -> str:
        who = f"facility {self.facility_id}" if self.country is None else f"country {self.country}"
        start = le.timestamp(self.start) if self.start else "the beginning"
        end = le.timestamp(self.end) if self.end else "now"
        return f"{who}, {start} to {end}"

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return (self.start is None or end > self.start) and (self.end is None or start < self.end)


@dataclass(frozen=True)
class BundleEntry:
    index: int
    kind: str
    body: bytes
    proof: tuple[bytes, ...]


def select_records(
    entries: Iterable[tuple[int, str, bytes]], scope: Scope
) -> tuple[list[int], set[str]]:
    """From the registry's records and declarations (in log order), the indexes a bundle of
    ``scope`` holds, and the chips in scope (whose reports the bundle must add)."""
    items = list(entries)
    facilities: set[int] = set()
    for _, kind, body in items:
        if kind == le.FACILITY:
            facility = FacilityRecord.from_json(body)
            if facility.facility_id == scope.facility_id or facility.country == scope.country:
                facilities.add(facility.facility_id)
    chips: set[str] = set()
    chosen: list[int] = []
    # Per declaration: its chip (None for a cluster) and the facilities it names.
    declarations: dict[int, tuple[str | None, set[int]]] = {}
    for index, kind, body in items:
        if kind == le.INSTALLATION:
            installation = InstallationDeclaration.from_envelope(Envelope.from_json(body))
            declarations[index] = (installation.chip_id, {installation.facility_id})
        elif kind == le.TRANSFER:
            transfer = open_transfer(Envelope.from_json(body))
            ends = {transfer.from_facility_id, transfer.to_facility_id}
            declarations[index] = (transfer.chip_id, ends)
        elif kind == le.CLUSTER:
            cluster = ClusterDeclaration.from_envelope(Envelope.from_json(body))
            declarations[index] = (None, {cluster.facility_id})
        else:
            continue
        chip_id, named = declarations[index]
        if chip_id is not None and named & facilities:
            chips.add(chip_id)
    for index, kind, body in items:
        if kind in _ALWAYS:
            chosen.append(index)
        elif kind == le.ENROLLMENT:
            if EnrollmentRecord.from_json(body).chip_id in chips:
                chosen.append(index)
        elif index in declarations:
            chip_id, named = declarations[index]
            if (chip_id in chips) if chip_id is not None else bool(named & facilities):
                chosen.append(index)
        elif kind == le.CHIP_STATUS:
            if ChipStatusRecord.from_json(body).chip_id in chips:
                chosen.append(index)
        elif kind == le.VERIFIER_RUN:
            as_of = VerifierRunRecord.from_json(body).as_of
            if (scope.start is None or as_of >= scope.start) and (
                scope.end is None or as_of <= scope.end
            ):
                chosen.append(index)
    return chosen, chips


def build_bundle(
    *,
    origin: str,
    scope: Scope,
    checkpoint: str,
    entries: Sequence[BundleEntry],
    key: PrivateKey,
    created_at: datetime,
) -> bytes:
    """The signed bundle (DSSE envelope JSON), signed with the log's key."""
    payload = le.canonical_json(
        {
            "type": BUNDLE_TYPE,
            "origin": origin,
            "scope": scope.to_dict(),
            "created_at": le.timestamp(created_at),
            "checkpoint": checkpoint,
            "entries": [
                {
                    "index": e.index,
                    "kind": e.kind,
                    "body": base64.b64encode(e.body).decode("ascii"),
                    "proof": [base64.b64encode(h).decode("ascii") for h in e.proof],
                }
                for e in sorted(entries, key=lambda e: e.index)
            ],
        }
    )
    return sign_envelope(payload, BUNDLE_PAYLOAD_TYPE, key).to_json()


@dataclass
class BundleResult:
    scope: str = "?"
    entries: int = 0
    proofs_ok: int = 0
    problems: list[str] = field(default_factory=list)
    audit: AuditReport = field(default_factory=AuditReport)
    replay: Replay | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary_rows(self) -> list[list[object]]:
        def status(prefix: str) -> str:
            n = sum(1 for p in self.problems if p.startswith(prefix))
            return "OK" if n == 0 else f"FAIL ({n})"

        cp = self.audit.checkpoint
        rows: list[list[object]] = [
            ["bundle signature (log key)", 1, status("[bundle]")],
            ["checkpoint signature", cp.size if cp else "-", status("[checkpoint]")],
            [
                "witness cosignatures",
                ", ".join(c.name for c in self.audit.cosignatures) or "none",
                status("[cosignatures]"),
            ],
            ["inclusion proofs", f"{self.proofs_ok}/{self.entries}", status("[proof]")],
        ]
        if self.replay is not None:
            for kind in sorted(k for k in self.replay.counts if k != "not_checked"):
                rows.append([f"entries: {kind}", self.replay.counts[kind], status("entry")])
            rows.append(["signatures re-verified", self.replay.signatures_checked, "-"])
        return rows


def verify_bundle(data: bytes, policy: TrustPolicy) -> BundleResult:
    """Verify a bundle with no network: every check, every problem listed."""
    result = BundleResult()
    try:
        envelope = Envelope.from_json(data)
        if envelope.payload_type != BUNDLE_PAYLOAD_TYPE:
            raise FormatError(f"payloadType is not {BUNDLE_PAYLOAD_TYPE}")
        verify_envelope(envelope, policy.log.public_key)
        doc = loads_strict(envelope.payload, "audit bundle")
        if not isinstance(doc, dict) or doc.get("type") != BUNDLE_TYPE:
            raise FormatError(f"bundle type is not {BUNDLE_TYPE}")
        if doc.get("origin") != policy.log.name:
            raise FormatError(f"bundle is for log {doc.get('origin')!r}")
        scope = doc["scope"]
        result.scope = (
            f"facility {scope['facility_id']}"
            if scope.get("facility_id")
            else (f"country {scope.get('country')}")
        )
        result.scope += f", {scope.get('start') or 'beginning'} to {scope.get('end') or 'now'}"
        note = str(doc["checkpoint"])
        raw_entries = doc["entries"]
        if not isinstance(raw_entries, list):
            raise FormatError("bundle entries must be a list")
    except (AttestationError, KeyError, TypeError) as exc:
        result.problems.append(f"[bundle] {exc}")
        return result
    cp = check_checkpoint(note, policy, result.audit)
    result.problems.extend(f"[{p.check}] {p.detail}" for p in result.audit.problems)
    replay = Replay(trusted_vendor_fingerprints=policy.vendor_fingerprints, partial=True)
    result.replay = replay
    last = -1
    for item in raw_entries:
        result.entries += 1
        try:
            index, kind = int(item["index"]), str(item["kind"])
            body = base64.b64decode(item["body"], validate=True)
            proof = [base64.b64decode(h, validate=True) for h in item["proof"]]
        except (KeyError, TypeError, ValueError) as exc:
            result.problems.append(f"[bundle] malformed entry: {exc}")
            continue
        if index <= last:
            result.problems.append(f"[bundle] entry {index} out of order")
        last = index
        if cp is not None:
            try:
                merkle.verify_inclusion(
                    leaf_hash=merkle.leaf_hash(body),
                    index=index,
                    tree_size=cp.size,
                    proof=proof,
                    root=cp.root_hash,
                )
                result.proofs_ok += 1
            except AttestationError as exc:
                result.problems.append(f"[proof] entry {index}: {exc}")
        replay.feed(index, kind, body)
    result.problems.extend(f"entry {p.index}: [{p.check}] {p.detail}" for p in replay.problems)
    return result
