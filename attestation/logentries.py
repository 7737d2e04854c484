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

The typed record and declaration classes, with their one writer and one strict parser, are in
:mod:`attestation.records`; this module names the kinds and holds the canonical JSON encoding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from attestation.dsse import Envelope, sign_envelope
from attestation.errors import FormatError
from attestation.keys import PrivateKey
from attestation.timefmt import parse_timestamp, timestamp

__all__ = [
    "DECLARATION_KINDS",
    "DECLARATION_PAYLOAD_TYPE",
    "KINDS",
    "RECORD_KINDS",
    "RESERVED_KINDS",
    "SENSOR_KINDS",
    "canonical_json",
    "parse_timestamp",
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


def canonical_json(obj: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: the bytes a record is logged as."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign_declaration(kind: str, fields: Mapping[str, Any], key: PrivateKey) -> Envelope:
    """An operator's signed declaration: DSSE over ``{"type": ..., **fields}``, any fields.

    Clients build the fields with :mod:`attestation.records` (``Declaration.sign``); this
    signs whatever it is given, so tests can also sign payloads the registry must refuse.
    """
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
    all sign through it, so every client puts the same fields in the same format
    (:class:`attestation.records.InstallationDeclaration`).
    """
    from attestation.records import InstallationDeclaration  # noqa: PLC0415 (a cycle)

    return InstallationDeclaration(chip_id, facility_id, installed_at).sign(key)


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
    from attestation.records import ClusterDeclaration  # noqa: PLC0415 (a cycle)

    return ClusterDeclaration(name, purpose, facility_id, tuple(chip_ids), start, end).sign(key)
