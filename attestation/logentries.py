"""What each kind of log entry holds (docs/PROTOCOL.md, "Log entry kinds").

Two shapes:

* signed evidence and declarations are logged as the DSSE envelope received, in the canonical
  envelope JSON (``Envelope.to_json``): the signature covers the exact payload bytes. Usage
  reports are signed by chip keys; installation and cluster declarations by the operator's
  registered key, with payload type :data:`DECLARATION_PAYLOAD_TYPE` and a JSON payload whose
  ``type`` names the declaration;
* things the registry itself creates or accepts unsigned (vendor roots, operators and their
  keys, facilities, chip enrollments with the vendor-signed certificate, verifier runs with
  their findings, transfer conditions, cluster budgets and threshold notifications, landmark
  and meter registrations, chip-signed reports it rejected) are logged as a canonical JSON
  *record*: sorted keys, no whitespace, UTF-8, with a ``type`` field naming the record and its
  version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from attestation._json import loads_strict
from attestation.dsse import Envelope, sign_envelope
from attestation.errors import FormatError
from attestation.keys import PrivateKey
from attestation.timefmt import format_time

__all__ = [
    "DECLARATION_KINDS",
    "DECLARATION_PAYLOAD_TYPE",
    "KINDS",
    "RECORD_KINDS",
    "RESERVED_KINDS",
    "SENSOR_KINDS",
    "canonical_json",
    "open_declaration",
    "parse_record",
    "parse_timestamp",
    "record_body",
    "sign_cluster_declaration",
    "sign_declaration",
    "sign_installation_declaration",
    "timestamp",
]

USAGE_REPORT = "usage_report"
VENDOR = "vendor"
OPERATOR = "operator"
FACILITY = "facility"
ENROLLMENT = "enrollment"
INSTALLATION = "installation"
CLUSTER = "cluster"
VERIFIER_RUN = "verifier_run"
TRANSFER_CONDITION = "transfer_condition"
CLUSTER_BUDGET = "cluster_budget"
CLUSTER_NOTIFICATION = "cluster_notification"
LANDMARK = "landmark"
METER = "meter"
REJECTED_REPORT = "rejected_report"
LANDMARK_MEASUREMENT = "landmark_measurement"
METER_READING = "meter_reading"
CHIP_STATUS = "chip_status"
OPERATOR_KEY = "operator_key"
TRANSFER = "transfer"
GPU_ATTESTATION = "gpu_attestation"

RECORD_KINDS = {
    VENDOR: "chipreg.dev/record/vendor/v1",
    OPERATOR: "chipreg.dev/record/operator/v1",
    FACILITY: "chipreg.dev/record/facility/v1",
    ENROLLMENT: "chipreg.dev/record/enrollment/v1",
    VERIFIER_RUN: "chipreg.dev/record/verifier-run/v1",
    # Verifier inputs the registry accepts from authenticated callers (admins, vendors,
    # operators): each record names who declared it.
    TRANSFER_CONDITION: "chipreg.dev/record/transfer-condition/v1",
    CLUSTER_BUDGET: "chipreg.dev/record/cluster-budget/v1",
    CLUSTER_NOTIFICATION: "chipreg.dev/record/cluster-notification/v1",
    LANDMARK: "chipreg.dev/record/landmark/v1",
    METER: "chipreg.dev/record/meter/v1",
    # A chip-signed report the registry turned away, embedding the exact envelope received,
    # with the outcome, the delivering operator and the receipt time.
    REJECTED_REPORT: "chipreg.dev/record/rejected-report/v1",
    # A chip taken out of service (decommissioned) or whose key is no longer trusted (revoked).
    CHIP_STATUS: "chipreg.dev/record/chip-status/v1",
    # An operator's new declaration key, registered by an admin (the old key's declarations
    # stay verifiable under the key in force at their log position).
    OPERATOR_KEY: "chipreg.dev/record/operator-key/v1",
    # GPU device evidence the registry verified (at enrollment or on re-attestation), with
    # the exact report, chain and root, so a partner re-verifies it from the log alone.
    GPU_ATTESTATION: "chipreg.dev/record/gpu-attestation/v1",
}
DECLARATION_KINDS = {
    INSTALLATION: "chipreg.dev/declaration/installation/v1",
    CLUSTER: "chipreg.dev/declaration/cluster/v1",
    # Custody passing between operators: signed by both (attestation.transfer).
    TRANSFER: "chipreg.dev/declaration/transfer/v1",
}
# Sensor evidence: DSSE envelopes signed by the landmark's or meter's registered key
# (attestation.landmark, attestation.meter), logged as received.
SENSOR_KINDS = (LANDMARK_MEASUREMENT, METER_READING)
RESERVED_KINDS: tuple[str, ...] = ()  # no kind is left unchecked by the audit any more
KINDS = (USAGE_REPORT, *RECORD_KINDS, *DECLARATION_KINDS, *SENSOR_KINDS)

DECLARATION_PAYLOAD_TYPE = "application/vnd.chipreg.declaration+json"


def timestamp(value: datetime) -> str:
    """RFC 3339 UTC with ``Z``; fractional seconds only when present (canonical per instant)."""
    if value.utcoffset() is None:
        raise FormatError(f"timestamp must be timezone-aware, got {value.isoformat()}")
    utc = value.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """Inverse of :func:`timestamp`; :class:`FormatError` otherwise."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            value = datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except (TypeError, ValueError):
            continue
        if timestamp(value) == text:
            return value
    raise FormatError(f"invalid timestamp {text!r}")


def canonical_json(obj: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: the bytes a record is logged as."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def record_body(kind: str, fields: Mapping[str, Any]) -> bytes:
    """The log entry bytes of a registry record of ``kind``."""
    if kind not in RECORD_KINDS:
        raise FormatError(f"{kind!r} is not a record kind")
    if "type" in fields:
        raise FormatError("record fields must not contain 'type'")
    return canonical_json({"type": RECORD_KINDS[kind], **fields})


def parse_record(kind: str, body: bytes) -> dict[str, Any]:
    """Parse a record entry of ``kind``; its fields without ``type``. :class:`FormatError`."""
    if kind not in RECORD_KINDS:
        raise FormatError(f"{kind!r} is not a record kind")
    obj = loads_strict(body, f"{kind} record")
    if not isinstance(obj, dict) or obj.get("type") != RECORD_KINDS[kind]:
        raise FormatError(f"{kind} record does not have type {RECORD_KINDS[kind]!r}")
    if canonical_json(obj) != body:
        raise FormatError(f"{kind} record is not canonical JSON")
    return {k: v for k, v in obj.items() if k != "type"}


def sign_declaration(kind: str, fields: Mapping[str, Any], key: PrivateKey) -> Envelope:
    """An operator's signed declaration: DSSE over ``{"type": ..., **fields}``."""
    if kind not in DECLARATION_KINDS:
        raise FormatError(f"{kind!r} is not a declaration kind")
    if "type" in fields:
        raise FormatError("declaration fields must not contain 'type'")
    payload = canonical_json({"type": DECLARATION_KINDS[kind], **fields})
    return sign_envelope(payload, DECLARATION_PAYLOAD_TYPE, key)


def sign_installation_declaration(
    *, chip_id: str, facility_id: int, installed_at: datetime, key: PrivateKey
) -> Envelope:
    """The operator's declaration that ``chip_id`` is (from ``installed_at``) at the facility.

    The one builder of installation declarations: the CLI, the simulator and the load tests
    all sign through it, so every client puts the same fields in the same format.
    """
    return sign_declaration(
        INSTALLATION,
        {
            "chip_id": chip_id,
            "facility_id": facility_id,
            "installed_at": format_time(installed_at),
        },
        key,
    )


def sign_cluster_declaration(
    *,
    name: str,
    purpose: str,
    facility_id: int,
    chip_ids: Sequence[str],
    start: datetime,
    end: datetime,
    key: PrivateKey,
) -> Envelope:
    """The operator's declaration of a cluster of chips working together over [start, end)."""
    return sign_declaration(
        CLUSTER,
        {
            "name": name,
            "purpose": purpose,
            "facility_id": facility_id,
            "chip_ids": list(chip_ids),
            "start": format_time(start),
            "end": format_time(end),
        },
        key,
    )


def open_declaration(envelope: Envelope, kind: str) -> dict[str, Any]:
    """The fields of a declaration envelope of ``kind`` (signature NOT checked here).

    :class:`FormatError` if the payload type, JSON or ``type`` is not a ``kind`` declaration.
    """
    if kind not in DECLARATION_KINDS:
        raise FormatError(f"{kind!r} is not a declaration kind")
    if envelope.payload_type != DECLARATION_PAYLOAD_TYPE:
        raise FormatError(f"declaration payloadType must be {DECLARATION_PAYLOAD_TYPE!r}")
    obj = loads_strict(envelope.payload, f"{kind} declaration")
    if not isinstance(obj, dict) or obj.get("type") != DECLARATION_KINDS[kind]:
        raise FormatError(f"payload is not a {DECLARATION_KINDS[kind]} declaration")
    return {k: v for k, v in obj.items() if k != "type"}
