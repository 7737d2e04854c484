"""Typed log records and declarations: one frozen class per kind (docs/PROTOCOL.md 5.1, 5.1.1).

As python-tuf does for its metadata (``tuf/api/_payload.py``), each kind of registry record is a
class with exactly the fields the record holds, one strict writer (:meth:`Record.to_json`: the
canonical bytes the registry logs) and one strict parser (:func:`parse_record`,
:meth:`Record.from_json`). The parser refuses what the writer never produces: an unknown or a
missing field, a value of the wrong JSON type (a bool is not an integer, a number is not a
time), a time not in the record form of :func:`attestation.timefmt.timestamp`, base64 that does
not re-encode to itself, bytes that are not the record's canonical JSON. So for every record
``parse_record(r.to_json()) == r``, and every logged record re-encodes to its own bytes.

Operator declarations (installation, cluster) are signed payloads the registry logs exactly as
received: :class:`Declaration` parses them by the same field rules, with their times read by
:func:`attestation.timefmt.parse_declared_time`, the rule the registry's request schemas apply.
The transfer declaration has its own module (:mod:`attestation.transfer`).
"""

from __future__ import annotations

import base64
import binascii
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, Self

from attestation._json import loads_strict
from attestation.dsse import Envelope
from attestation.errors import FormatError
from attestation.keys import PrivateKey
from attestation.logentries import (
    DECLARATION_KINDS,
    DECLARATION_PAYLOAD_TYPE,
    RECORD_KINDS,
    canonical_json,
    sign_declaration,
)
from attestation.timefmt import format_time, parse_declared_time, parse_timestamp, timestamp

__all__ = [
    "ChipStatusRecord",
    "ClusterBudgetRecord",
    "ClusterDeclaration",
    "ClusterNotificationRecord",
    "Declaration",
    "EnrollmentRecord",
    "FacilityRecord",
    "GpuAttestationRecord",
    "HostPower",
    "InstallationDeclaration",
    "LandmarkRecord",
    "MeterRecord",
    "OperatorKeyRecord",
    "OperatorRecord",
    "Record",
    "RejectedReportRecord",
    "ReportReceipt",
    "TransferConditionRecord",
    "VendorRecord",
    "VerifierRunRecord",
    "parse_record",
    "record_class",
]

JsonObject = dict[str, Any]
Decoder = Callable[[object, str], Any]

# Field metadata: a field absent from the JSON when its value is None (rather than null).
OMIT_NONE = {"omit_none": True}
# Field metadata: a time an operator wrote in a declaration it signed.
DECLARED_TIME = {"declared_time": True}


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _int(value: object, what: str) -> int:
    if type(value) is not int:  # bool is an int subclass, and never an integer field
        raise FormatError(f"{what} must be an integer, got {type(value).__name__}")
    return value


def _number(value: object, what: str) -> float:
    # Kept as parsed (an integer stays one), so the record re-encodes to its own bytes.
    if type(value) not in (int, float):
        raise FormatError(f"{what} must be a number, got {type(value).__name__}")
    return typing.cast(float, value)


def _object(value: object, what: str) -> JsonObject:
    if not isinstance(value, dict):
        raise FormatError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _base64(value: object, what: str) -> bytes:
    text = _str(value, what)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError(f"{what} is not canonical base64")
    return raw


def _time(value: object, what: str) -> datetime:
    return parse_timestamp(value, what)


def _declared_time(value: object, what: str) -> datetime:
    return parse_declared_time(value, what)


def _nullable(inner: Decoder) -> Decoder:
    def decode(value: object, what: str) -> Any:
        return None if value is None else inner(value, what)

    return decode


def _list_of(inner: Decoder) -> Decoder:
    def decode(value: object, what: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise FormatError(f"{what} must be a list, got {type(value).__name__}")
        return tuple(inner(item, f"{what}[{i}]") for i, item in enumerate(value))

    return decode


_SCALARS: dict[object, Decoder] = {
    str: _str,
    int: _int,
    float: _number,
    bytes: _base64,
    datetime: _time,
    JsonObject: _object,
}


def _decoder(hint: Any, owner: str) -> Decoder:
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        return _nullable(_decoder(next(a for a in args if a is not type(None)), owner))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _list_of(_decoder(args[0], owner))
    if isinstance(hint, type) and issubclass(hint, JsonFields):
        return hint.from_dict
    raise TypeError(f"{owner}: no JSON rule for field type {hint!r}")  # a bug in this module


def _encode(value: object, declared: bool = False) -> object:
    if isinstance(value, datetime):
        return format_time(value) if declared else timestamp(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple):
        return [_encode(v, declared) for v in value]
    if isinstance(value, JsonFields):
        return value.to_dict()
    return value


@dataclass(frozen=True, slots=True)
class JsonFields:
    """A JSON object with a fixed set of typed fields (the base of records and their parts)."""

    def to_dict(self) -> JsonObject:
        """The JSON object of this value (times as text, bytes as base64, tuples as lists)."""
        out: JsonObject = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _encode(value, bool(f.metadata.get("declared_time")))
        return out

    @classmethod
    def from_dict(cls, obj: object, what: str | None = None) -> Self:
        """Strictly: exactly the class's fields, each of its JSON type; :class:`FormatError`."""
        what = what or cls.__name__
        data = _object(obj, what)
        spec = _SPECS.get(cls) or _spec(cls)
        unknown = sorted(set(data) - set(spec))
        if unknown:
            raise FormatError(f"{what} has unknown field(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, (decode, optional) in spec.items():
            if name in data:
                values[name] = decode(data[name], f"{what}.{name}")
            elif optional:
                values[name] = None
            else:
                raise FormatError(f"{what} lacks the field {name!r}")
        return cls(**values)


_SPECS: dict[type, dict[str, tuple[Decoder, bool]]] = {}


def _spec(cls: type[JsonFields]) -> dict[str, tuple[Decoder, bool]]:
    """Each field's decoder and whether it may be absent, from the class's annotations."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[Decoder, bool]] = {}
    for f in fields(cls):
        optional = bool(f.metadata.get("omit_none"))
        decode: Decoder = (
            _declared_time
            if f.metadata.get("declared_time")
            else _decoder(hints[f.name], cls.__name__)
        )
        out[f.name] = (_nullable(decode) if optional else decode, optional)
    _SPECS[cls] = out
    return out


@dataclass(frozen=True, slots=True)
class Record(JsonFields):
    """A record the registry writes to the log; subclasses name their ``KIND``."""

    KIND: ClassVar[str]

    @classmethod
    def type_name(cls) -> str:
        """The record's ``type`` string, e.g. ``chipreg.dev/record/vendor/v1``."""
        return RECORD_KINDS[cls.KIND]

    def to_json(self) -> bytes:
        """The exact bytes logged: canonical JSON (sorted keys, no whitespace) with ``type``."""
        return canonical_json({"type": self.type_name(), **self.to_dict()})

    @classmethod
    def from_json(cls, body: bytes) -> Self:
        """Parse a logged record of this kind; :class:`FormatError` for anything else."""
        record = parse_record(body, cls.KIND)
        assert isinstance(record, cls)
        return record


# -- accounts ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VendorRecord(Record):
    KIND: ClassVar[str] = "vendor"
    vendor_id: int
    name: str
    root_certificate_pem: str
    fingerprint: str
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class OperatorRecord(Record):
    KIND: ClassVar[str] = "operator"
    operator_id: int
    name: str
    country: str
    public_key: str
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class OperatorKeyRecord(Record):
    KIND: ClassVar[str] = "operator_key"
    operator_id: int
    public_key: str
    previous_public_key: str
    reason: str
    declared_by: str
    rotated_at: datetime


@dataclass(frozen=True, slots=True)
class HostPower(JsonFields):
    """A facility's declared host power model (docs/PROTOCOL.md 6)."""

    gpus_per_host: int
    idle_w: float
    per_gpu_slot_w: float
    busy_w: float


@dataclass(frozen=True, slots=True)
class FacilityRecord(Record):
    KIND: ClassVar[str] = "facility"
    facility_id: int
    operator_id: int
    name: str
    country: str
    latitude: float
    longitude: float
    declared_power_kw: float
    pue: float
    non_it_load_kw: float
    declared_at: datetime
    # Absent, not null, when not declared: records written before it existed are unchanged.
    host_power: HostPower | None = field(default=None, metadata=OMIT_NONE)


# -- chips ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EnrollmentRecord(Record):
    KIND: ClassVar[str] = "enrollment"
    chip_id: str
    vendor_id: int
    vendor_root_fingerprint: str
    model: str
    public_key: str
    key_id: str
    certificate_pem: str
    certificate_fingerprint: str
    peak_tflops_bf16: float
    tdp_watts: float | None
    enrolled_at: datetime


@dataclass(frozen=True, slots=True)
class ChipStatusRecord(Record):
    KIND: ClassVar[str] = "chip_status"
    chip_id: str
    status: str
    reason: str
    effective_at: datetime
    declared_by: str
    declared_role: str
    operator_id: int | None


@dataclass(frozen=True, slots=True)
class ReportReceipt(JsonFields):
    """Where and when an accepted report was logged (a rejected copy's ``original``)."""

    log_index: int
    received_at: datetime


@dataclass(frozen=True, slots=True)
class RejectedReportRecord(Record):
    KIND: ClassVar[str] = "rejected_report"
    envelope: bytes  # the exact canonical envelope received
    digest: str
    outcome: str
    operator_id: int | None
    received_at: datetime
    original: ReportReceipt | None


@dataclass(frozen=True, slots=True)
class GpuAttestationRecord(Record):
    KIND: ClassVar[str] = "gpu_attestation"
    chip_id: str
    purpose: str
    chip_public_key: str
    registry_nonce: str
    report: bytes
    certificates: tuple[bytes, ...]
    root_certificate: bytes
    root_fingerprint: str
    hardware_id: str
    device_serial: str | None
    driver_version: str | None
    vbios_version: str | None
    verified_at: datetime


# -- verifier inputs and runs -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VerifierRunRecord(Record):
    KIND: ClassVar[str] = "verifier_run"
    as_of: datetime
    since: datetime | None
    policy_id: str
    policy_version: str
    log_size: int
    findings: tuple[JsonObject, ...]  # each in its public form (verifier.findings)


@dataclass(frozen=True, slots=True)
class TransferConditionRecord(Record):
    KIND: ClassVar[str] = "transfer_condition"
    chip_id: str
    allowed_countries: tuple[str, ...]
    effective_from: datetime
    declared_by: str
    declared_role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClusterBudgetRecord(Record):
    KIND: ClassVar[str] = "cluster_budget"
    cluster_id: int
    operator_id: int
    compute_budget_flop: float
    declared_by: str
    declared_at: datetime


@dataclass(frozen=True, slots=True)
class ClusterNotificationRecord(Record):
    KIND: ClassVar[str] = "cluster_notification"
    cluster_id: int
    operator_id: int
    threshold_flop: float
    notified_at: datetime
    note: str
    declared_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LandmarkRecord(Record):
    KIND: ClassVar[str] = "landmark"
    landmark_id: int
    name: str
    public_key: str
    latitude: float
    longitude: float
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class MeterRecord(Record):
    KIND: ClassVar[str] = "meter"
    meter_id: int
    name: str
    facility_id: int
    public_key: str
    registered_at: datetime


_RECORDS: tuple[type[Record], ...] = (
    VendorRecord,
    OperatorRecord,
    OperatorKeyRecord,
    FacilityRecord,
    EnrollmentRecord,
    ChipStatusRecord,
    RejectedReportRecord,
    GpuAttestationRecord,
    VerifierRunRecord,
    TransferConditionRecord,
    ClusterBudgetRecord,
    ClusterNotificationRecord,
    LandmarkRecord,
    MeterRecord,
)
_BY_TYPE = {cls.type_name(): cls for cls in _RECORDS}
assert set(_BY_TYPE) == set(RECORD_KINDS.values()), "a record kind without its class"


def record_class(kind: str) -> type[Record]:
    """The class of the record kind ``kind``; :class:`FormatError` if it is not one."""
    if kind not in RECORD_KINDS:
        raise FormatError(f"{kind!r} is not a record kind")
    return _BY_TYPE[RECORD_KINDS[kind]]


def parse_record(body: bytes, kind: str | None = None) -> Record:
    """Parse a logged record by its ``type`` (which must be ``kind``'s, when given).

    The one strict parser of registry records: the body must be exactly the record's
    canonical bytes (what :meth:`Record.to_json` writes for the parsed value).
    """
    what = f"{kind} record" if kind else "record"
    expected = None if kind is None else record_class(kind).type_name()
    obj = _object(loads_strict(body, what), what)
    type_name = obj.get("type")
    if expected is not None and type_name != expected:
        raise FormatError(f"{what} does not have type {expected!r}")
    cls = _BY_TYPE.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise FormatError(f"{what} has unknown type {type_name!r}")
    record = cls.from_dict({k: v for k, v in obj.items() if k != "type"}, what)
    if record.to_json() != body:
        raise FormatError(f"{what} is not canonical JSON")
    return record


# -- operator declarations --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Declaration(JsonFields):
    """An operator-signed declaration's payload; subclasses name their ``KIND``."""

    KIND: ClassVar[str]

    @classmethod
    def type_name(cls) -> str:
        """The payload's ``type`` string, e.g. ``chipreg.dev/declaration/cluster/v1``."""
        return DECLARATION_KINDS[cls.KIND]

    def payload(self) -> bytes:
        """The payload chipreg signs: canonical JSON with ``type``, times in whole seconds."""
        return canonical_json({"type": self.type_name(), **self.to_dict()})

    def sign(self, key: PrivateKey) -> Envelope:
        """The DSSE envelope of this declaration signed by the operator's ``key``."""
        return sign_declaration(self.KIND, self.to_dict(), key)

    @classmethod
    def payload_fields(cls, envelope: Envelope) -> JsonObject:
        """The payload's fields but ``type``, once the envelope is this kind's declaration.

        Any JSON layout is accepted (the signature covers the bytes received, which are logged
        as they are). :class:`FormatError` if the payload type, JSON or ``type`` is not this
        declaration's; the fields are checked by :meth:`from_dict` (signature NOT checked here).
        """
        what = f"{cls.KIND} declaration"
        if envelope.payload_type != DECLARATION_PAYLOAD_TYPE:
            raise FormatError(f"declaration payloadType must be {DECLARATION_PAYLOAD_TYPE!r}")
        obj = loads_strict(envelope.payload, what)
        if not isinstance(obj, dict) or obj.get("type") != cls.type_name():
            raise FormatError(f"payload is not a {cls.type_name()} declaration")
        return {k: v for k, v in obj.items() if k != "type"}

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> Self:
        """The declaration an envelope carries, strictly (signature NOT checked here)."""
        return cls.from_dict(cls.payload_fields(envelope), f"{cls.KIND} declaration")


@dataclass(frozen=True, slots=True)
class InstallationDeclaration(Declaration):
    """``chip_id`` is (from ``installed_at``) at the facility: an installation or a move."""

    KIND: ClassVar[str] = "installation"
    chip_id: str
    facility_id: int
    installed_at: datetime = field(metadata=DECLARED_TIME)


@dataclass(frozen=True, slots=True)
class ClusterDeclaration(Declaration):
    """Chips of one facility working together over [start, end)."""

    KIND: ClassVar[str] = "cluster"
    name: str
    purpose: str
    facility_id: int
    chip_ids: tuple[str, ...]
    start: datetime = field(metadata=DECLARED_TIME)
    end: datetime = field(metadata=DECLARED_TIME)
