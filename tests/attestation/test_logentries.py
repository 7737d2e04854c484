"""Log entry formats: canonical records and signed declarations are strict."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from attestation import logentries as le
from attestation.dsse import Envelope, verify_envelope
from attestation.errors import FormatError
from attestation.keys import PrivateKey

KEY = PrivateKey.from_seed(hashlib.sha256(b"operator").digest())


def test_record_round_trip_and_strictness() -> None:
    body = le.record_body(le.OPERATOR, {"operator_id": 1, "name": "Ünïcode", "public_key": "x"})
    assert body.startswith(b'{"name":"\xc3\x9cn')
    assert le.parse_record(le.OPERATOR, body)["operator_id"] == 1
    with pytest.raises(FormatError):
        le.parse_record(le.VENDOR, body)  # another kind's type
    with pytest.raises(FormatError):
        le.parse_record(le.OPERATOR, body.replace(b",", b", ", 1))  # not canonical
    with pytest.raises(FormatError):
        le.record_body(le.INSTALLATION, {})  # a declaration kind is not a record
    assert set(le.SENSOR_KINDS) == {"landmark_measurement", "meter_reading"}
    assert not le.RESERVED_KINDS  # every kind is replayed by the audit
    assert le.REJECTED_REPORT in le.RECORD_KINDS and le.TRANSFER_CONDITION in le.KINDS


def test_declarations_are_typed_dsse_envelopes() -> None:
    env = le.sign_declaration(le.CLUSTER, {"facility_id": 3, "chip_ids": ["a"]}, KEY)
    assert env.payload_type == le.DECLARATION_PAYLOAD_TYPE
    verify_envelope(env, KEY.public_key)
    assert le.open_declaration(env, le.CLUSTER) == {"facility_id": 3, "chip_ids": ["a"]}
    with pytest.raises(FormatError):
        le.open_declaration(env, le.INSTALLATION)
    wrong_type = Envelope(env.payload, "application/json", env.signatures)
    with pytest.raises(FormatError):
        le.open_declaration(wrong_type, le.CLUSTER)


def test_timestamps_are_canonical() -> None:
    t = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert le.timestamp(t) == "2026-03-01T12:00:05Z"
    assert le.parse_timestamp("2026-03-01T12:00:05Z") == t
    assert le.parse_timestamp(le.timestamp(t.replace(microsecond=7))) == t.replace(microsecond=7)
    for bad in ("2026-03-01T12:00:05", "2026-03-01T12:00:05.000000Z", "yesterday"):
        with pytest.raises(FormatError):
            le.parse_timestamp(bad)
