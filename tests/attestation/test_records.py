"""Typed log records and declarations: one writer, one strict parser, the bytes unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from datetime import UTC, datetime
from typing import Any

import pytest

from attestation import logentries as le
from attestation.errors import FormatError
from attestation.keys import PrivateKey
from attestation.records import (
    ChipStatusRecord,
    ClusterBudgetRecord,
    ClusterDeclaration,
    ClusterNotificationRecord,
    EnrollmentRecord,
    FacilityRecord,
    GpuAttestationRecord,
    HostPower,
    InstallationDeclaration,
    JsonFields,
    LandmarkRecord,
    MeterRecord,
    OperatorKeyRecord,
    OperatorRecord,
    Record,
    RejectedReportRecord,
    ReportReceipt,
    TransferConditionRecord,
    VendorRecord,
    VerifierRunRecord,
    parse_record,
    record_class,
)

T0 = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=UTC)  # the registry's clock has microseconds
KEY = PrivateKey.from_seed(hashlib.sha256(b"operator").digest())

SAMPLES: list[Record] = [
    VendorRecord(1, "Acme", "-----BEGIN CERTIFICATE-----\n...", "ab" * 32, T0),
    OperatorRecord(2, "Ünïcode Compute", "US", "b64key", T1),
    OperatorKeyRecord(2, "newkey", "oldkey", "lost laptop", "admin", T1),
    FacilityRecord(3, 2, "Abilene", "US", 32.4, -99.7, 1000.0, 1.3, 0.0, T0),
    FacilityRecord(4, 2, "Round", "US", 1, 2, 3, 1, 0, T1, HostPower(8, 1200.0, 60, 1500.0)),
    EnrollmentRecord("NV-1", 1, "ab" * 32, "H100", "pk", "kid", "PEM", "cd" * 32, 989.5, 700.0, T0),
    EnrollmentRecord("NV-2", 1, "ab" * 32, "H100", "pk", "kid", "PEM", "cd" * 32, 989, None, T1),
    ChipStatusRecord("NV-1", "decommissioned", "rack retired", T1, "ops", "operator", 2),
    ChipStatusRecord("NV-2", "revoked", "key leaked", T0, "acme", "vendor", None),
    RejectedReportRecord(b'{"payload":"x"}', "ef" * 32, "forbidden", 2, T1, None),
    RejectedReportRecord(b"\x00\xff", "ef" * 32, "replayed_report", None, T1, ReportReceipt(9, T0)),
    GpuAttestationRecord(
        "NV-1",
        "enrollment",
        "pk",
        "00ff",
        b"report",
        (b"leaf", b"ca"),
        b"root",
        "12" * 32,
        "34" * 32,
        None,
        "550.54",
        None,
        T1,
    ),
    VerifierRunRecord(T0, None, "default", "3", 42, ({"fingerprint": "f", "details": {"a": 1}},)),
    VerifierRunRecord(T1, T0, "demo", "1", 0, ()),
    TransferConditionRecord("NV-1", ("CA", "US"), T0, "admin", "admin", T1),
    TransferConditionRecord("NV-1", (), T0, "acme", "vendor", T0),
    ClusterBudgetRecord(7, 2, 1e24, "ops", T1),
    ClusterNotificationRecord(7, 2, 5e23, T0, "", "ops", T1),
    LandmarkRecord(1, "Frankfurt", "pk", 50.1, 8.7, T0),
    MeterRecord(1, "main feed", 3, "pk", T1),
]
IDS = [f"{type(r).__name__}-{i}" for i, r in enumerate(SAMPLES)]


def _json(record: Record) -> dict[str, Any]:
    obj = json.loads(record.to_json())
    assert isinstance(obj, dict)
    return obj


def _hints(record: JsonFields) -> dict[str, Any]:
    return typing.get_type_hints(type(record))


def test_every_record_kind_has_a_class_and_a_sample() -> None:
    assert {r.KIND for r in SAMPLES} == set(le.RECORD_KINDS)
    for kind, type_name in le.RECORD_KINDS.items():
        assert record_class(kind).type_name() == type_name
    with pytest.raises(FormatError):
        record_class(le.INSTALLATION)  # a declaration kind is not a record


@pytest.mark.parametrize("record", SAMPLES, ids=IDS)
def test_writer_parser_writer_is_byte_identical(record: Record) -> None:
    body = record.to_json()
    parsed = parse_record(body)
    assert parsed == record
    assert parsed.to_json() == body
    assert type(record).from_json(body) == record
    assert parse_record(body, record.KIND) == record
    # Canonical JSON: what the registry has always logged.
    assert body == le.canonical_json({"type": le.RECORD_KINDS[record.KIND], **_json(record)})


def test_bytes_are_those_the_dict_writers_logged() -> None:
    """Literal bytes as the registry's services wrote them before the typed records."""
    assert (
        OperatorRecord(2, "Ünïcode", "US", "k", T1).to_json()
        == (
            '{"country":"US","name":"Ünïcode","operator_id":2,"public_key":"k",'
            '"registered_at":"2026-03-01T12:00:05.250000Z","type":"chipreg.dev/record/operator/v1"}'
        ).encode()
    )
    assert SAMPLES[4].to_json() == (
        b'{"country":"US","declared_at":"2026-03-01T12:00:05.250000Z","declared_power_kw":3,'
        b'"facility_id":4,"host_power":{"busy_w":1500.0,"gpus_per_host":8,"idle_w":1200.0,'
        b'"per_gpu_slot_w":60},"latitude":1,"longitude":2,"name":"Round","non_it_load_kw":0,'
        b'"operator_id":2,"pue":1,"type":"chipreg.dev/record/facility/v1"}'
    )
    assert b'"host_power"' not in SAMPLES[3].to_json()  # absent, not null, when not declared
    assert SAMPLES[10].to_json() == (
        b'{"digest":"' + b"ef" * 32 + b'","envelope":"AP8=","operator_id":null,'
        b'"original":{"log_index":9,"received_at":"2026-03-01T12:00:05Z"},'
        b'"outcome":"replayed_report","received_at":"2026-03-01T12:00:05.250000Z",'
        b'"type":"chipreg.dev/record/rejected-report/v1"}'
    )


def _refused(obj: dict[str, Any], kind: str | None = None, match: str | None = None) -> None:
    with pytest.raises(FormatError, match=match):
        parse_record(le.canonical_json(obj), kind)


@pytest.mark.parametrize("record", SAMPLES, ids=IDS)
def test_unknown_and_missing_fields_are_refused(record: Record) -> None:
    _refused({**_json(record), "extra": 1}, match="unknown field")
    for f in dataclasses.fields(record):
        obj = _json(record)
        if f.name not in obj:
            continue  # host_power, absent when not declared
        del obj[f.name]
        if f.metadata.get("omit_none"):
            assert parse_record(le.canonical_json(obj)) == dataclasses.replace(
                record, **{f.name: None}
            )
        else:
            _refused(obj, match="lacks the field")


@pytest.mark.parametrize("record", SAMPLES, ids=IDS)
def test_wrong_json_types_are_refused(record: Record) -> None:
    hints = _hints(record)
    for f in dataclasses.fields(record):
        hint = hints[f.name]
        wrong: list[object] = [{"nested": "object"}]
        if hint in (int, int | None):
            wrong += [True, False, 1.0, "1"]  # a bool is not an integer
        if hint in (float, float | None):
            wrong += [True, "1.5"]
        if hint in (datetime, datetime | None):
            wrong += [
                1767225600,  # a number is not a time
                "2026-03-01T12:00:05+00:00",  # an offset, even a zero one
                "2026-03-01T13:00:05+01:00",
                "2026-03-01T12:00:05",  # no zone
                "2026-03-01T12:00:05.000000Z",  # a zero fraction is written without one
                "2026-03-01T12:00:05.25Z",  # the writer gives six digits
                "2026-03-01 12:00:05Z",
            ]
        if hint in (str, str | None):
            wrong += [1, True]
        if hint is bytes:
            wrong += ["not base64!", "AP9=", 1]  # AP9= decodes, but AP8= is its canonical form
        if typing.get_origin(hint) is tuple:
            wrong += ["a", [1], [None]]
        for value in wrong:
            _refused({**_json(record), f.name: value})


@pytest.mark.parametrize("record", SAMPLES, ids=IDS)
def test_type_and_layout_are_checked(record: Record) -> None:
    obj = _json(record)
    _refused({**obj, "type": obj["type"].replace("/v1", "/v2")}, match="unknown type")
    other = next(k for k in le.RECORD_KINDS if k != record.KIND)
    _refused(obj, other, match="does not have type")
    _refused({k: v for k, v in obj.items() if k != "type"}, match="unknown type")
    body = record.to_json()
    with pytest.raises(FormatError, match="canonical"):
        parse_record(body.replace(b",", b", ", 1))  # the same record, not its logged bytes
    with pytest.raises(FormatError):
        parse_record(b"[" + body + b"]")


def test_nested_objects_are_strict() -> None:
    facility = _json(SAMPLES[4])
    _refused({**facility, "host_power": {**facility["host_power"], "extra": 1}})
    _refused({**facility, "host_power": {**facility["host_power"], "gpus_per_host": 8.0}})
    _refused({**facility, "host_power": None})  # absent when not declared, never null
    rejected = _json(SAMPLES[10])
    _refused({**rejected, "original": {"log_index": 9}})
    _refused({**rejected, "original": {"log_index": True, "received_at": "2026-03-01T12:00:05Z"}})


def test_times_must_be_aware() -> None:
    naive = dataclasses.replace(SAMPLES[0], registered_at=datetime(2026, 3, 1))  # type: ignore[arg-type]
    with pytest.raises(FormatError):
        naive.to_json()


# -- declarations -----------------------------------------------------------------------------
def test_declarations_sign_the_payload_clients_always_signed() -> None:
    env = InstallationDeclaration("NV-1", 3, T0).sign(KEY)
    assert env.payload == (
        b'{"chip_id":"NV-1","facility_id":3,"installed_at":"2026-03-01T12:00:05Z",'
        b'"type":"chipreg.dev/declaration/installation/v1"}'
    )
    assert env == le.sign_installation_declaration(
        chip_id="NV-1", facility_id=3, installed_at=T0, key=KEY
    )
    assert InstallationDeclaration.from_envelope(env) == InstallationDeclaration("NV-1", 3, T0)
    cluster = ClusterDeclaration("run", "training", 3, ("A", "B"), T0, T0.replace(hour=13))
    assert ClusterDeclaration.from_envelope(cluster.sign(KEY)) == cluster
    with pytest.raises(FormatError):
        InstallationDeclaration("NV-1", 3, T1).sign(KEY)  # operators declare whole seconds


def _declared(fields: dict[str, object]) -> InstallationDeclaration:
    env = le.sign_declaration(le.INSTALLATION, fields, KEY)
    return InstallationDeclaration.from_envelope(env)


def test_declarations_accept_what_the_registry_accepts() -> None:
    fields = {"chip_id": "NV-1", "facility_id": 3, "installed_at": "2026-03-01T13:00:05.5+01:00"}
    assert _declared(fields).installed_at == T0.replace(microsecond=500000)


@pytest.mark.parametrize(
    "change",
    [
        {"installed_at": 1767225600},  # a Unix time: pydantic's lax datetime took it
        {"installed_at": "2026-03-01T12:00:05"},
        {"facility_id": "3"},  # pydantic's lax int took it; the audit's int() did too
        {"facility_id": True},
        {"facility_id": 3.0},
        {"chip_id": 7},
        {"extra": "field"},
    ],
)
def test_declarations_refuse_what_pydantic_would_coerce(change: dict[str, object]) -> None:
    fields = {"chip_id": "NV-1", "facility_id": 3, "installed_at": "2026-03-01T12:00:05Z"}
    with pytest.raises(FormatError):
        _declared({**fields, **change})
    del fields["chip_id"]
    with pytest.raises(FormatError, match="lacks the field"):
        _declared(fields)
