"""Signed exports: an inventory or findings report (CSV or JSON) with a detached signature by
the log's key, naming the checkpoint it was cut at.

The signature file is a DSSE envelope signed by the log's own Ed25519 key, payload type
:data:`EXPORT_PAYLOAD_TYPE`, whose payload is canonical JSON::

    {"type": "chipreg.dev/export-signature/v1", "origin": ..., "kind": "inventory",
     "format": "csv", "sha256": "<hex of the export's exact bytes>", "created_at": ...,
     "checkpoint": "<cosigned checkpoint note>"}

Verifying needs only the log's verifier key (and, if the policy asks, witness keys): the
envelope signature, the digest of the file as received, and the checkpoint's signature and
cosignatures. Rows of an export carry log indexes; each must lie inside that checkpoint.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from attestation import logentries as le
from attestation._json import loads_strict
from attestation.dsse import Envelope, sign_envelope, verify_envelope
from attestation.errors import AttestationError, FormatError
from attestation.keys import PrivateKey
from audit.core import AuditReport, TrustPolicy, check_checkpoint

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_KINDS",
    "EXPORT_PAYLOAD_TYPE",
    "EXPORT_TYPE",
    "ExportResult",
    "cited_indexes",
    "sign_export",
    "verify_export",
]

EXPORT_PAYLOAD_TYPE = "application/vnd.chipreg.export-signature+json"
EXPORT_TYPE = "chipreg.dev/export-signature/v1"
EXPORT_KINDS = ("inventory", "findings")
EXPORT_FORMATS = ("csv", "json")


def sign_export(
    *,
    content: bytes,
    origin: str,
    kind: str,
    fmt: str,
    checkpoint: str,
    key: PrivateKey,
    created_at: datetime,
) -> bytes:
    """The detached signature (DSSE envelope JSON) of an export's exact bytes."""
    if kind not in EXPORT_KINDS or fmt not in EXPORT_FORMATS:
        raise FormatError(f"unknown export {kind!r} as {fmt!r}")
    payload = le.canonical_json(
        {
            "type": EXPORT_TYPE,
            "origin": origin,
            "kind": kind,
            "format": fmt,
            "sha256": hashlib.sha256(content).hexdigest(),
            "created_at": le.timestamp(created_at),
            "checkpoint": checkpoint,
        }
    )
    return sign_envelope(payload, EXPORT_PAYLOAD_TYPE, key).to_json()


@dataclass
class ExportResult:
    kind: str = "?"
    fmt: str = "?"
    created_at: str = "?"
    checkpoint_size: int | None = None
    problems: list[str] = field(default_factory=list)
    audit: AuditReport = field(default_factory=AuditReport)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_export(
    content: bytes,
    signature: bytes,
    policy: TrustPolicy,
    *,
    log_indexes: Iterable[int] = (),
) -> ExportResult:
    """Check an export against its detached signature; every problem is listed.

    ``log_indexes`` are the indexes the export's rows cite (the caller parses its own format);
    each must be below the checkpoint's size.
    """
    result = ExportResult()
    try:
        envelope = Envelope.from_json(signature)
        if envelope.payload_type != EXPORT_PAYLOAD_TYPE:
            raise FormatError(f"payloadType is not {EXPORT_PAYLOAD_TYPE}")
        verify_envelope(envelope, policy.log.public_key)
        doc = loads_strict(envelope.payload, "export signature")
        if not isinstance(doc, dict) or doc.get("type") != EXPORT_TYPE:
            raise FormatError(f"signature type is not {EXPORT_TYPE}")
        if doc.get("origin") != policy.log.name:
            raise FormatError(f"signature is for log {doc.get('origin')!r}")
        result.kind, result.fmt = str(doc["kind"]), str(doc["format"])
        result.created_at = str(doc["created_at"])
        digest, note = str(doc["sha256"]), str(doc["checkpoint"])
    except (AttestationError, KeyError, TypeError) as exc:
        result.problems.append(f"[signature] {exc}")
        return result
    if hashlib.sha256(content).hexdigest() != digest:
        result.problems.append("[content] the export's bytes do not match the signed digest")
    cp = check_checkpoint(note, policy, result.audit)
    result.problems.extend(f"[{p.check}] {p.detail}" for p in result.audit.problems)
    if cp is not None:
        result.checkpoint_size = cp.size
        beyond = sorted(i for i in log_indexes if not 0 <= i < cp.size)
        if beyond:
            result.problems.append(
                f"[content] {len(beyond)} cited log indexes lie outside the checkpoint of size "
                f"{cp.size} (first: {beyond[0]})"
            )
    return result


def cited_indexes(content: bytes, kind: str, fmt: str) -> list[int]:
    """The log indexes an export's rows cite: installations' for an inventory, evidence for
    findings. :class:`FormatError` if the export cannot be parsed."""
    try:
        text = content.decode("utf-8")
        if fmt == "json":
            doc = json.loads(text)
            if kind == "inventory":
                rows = doc["chips"]
                return [
                    int(r["installation_log_index"])
                    for r in rows
                    if r.get("installation_log_index") is not None
                ]
            return [int(i) for f in doc["findings"] for i in f["evidence"]]
        reader = csv.DictReader(io.StringIO(text))
        if kind == "inventory":
            return [
                int(r["installation_log_index"]) for r in reader if r.get("installation_log_index")
            ]
        return [int(i) for r in reader for i in (r.get("evidence") or "").split()]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"cannot read the {kind} export as {fmt}: {exc}") from exc
