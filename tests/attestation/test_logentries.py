"""Log entry formats: canonical records and signed declarations are strict."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from attestation import logentries as le
from attestation.dsse import Envelope, verify_envelope
from attestation.errors import FormatError
from attestation.keys import PrivateKey
from attestation.records import ClusterDeclaration, InstallationDeclaration

KEY = PrivateKey.from_seed(hashlib.sha256(b"operator").digest())


def test_kinds() -> None:
    # The typed records and their strictness: tests/attestation/test_records.py.
    assert le.canonical_json({"b": 1, "a": "Ünïcode"}) == '{"a":"Ünïcode","b":1}'.encode()
    assert set(le.SENSOR_KINDS) == {"landmark_measurement", "meter_reading"}
    assert not le.RESERVED_KINDS  # every kind is replayed by the audit
    assert le.REJECTED_REPORT in le.RECORD_KINDS and le.TRANSFER_CONDITION in le.KINDS


def test_declarations_are_typed_dsse_envelopes() -> None:
    env = le.sign_declaration(le.CLUSTER, {"facility_id": 3, "chip_ids": ["a"]}, KEY)
    assert env.payload_type == le.DECLARATION_PAYLOAD_TYPE
    verify_envelope(env, KEY.public_key)
    assert ClusterDeclaration.payload_fields(env) == {"facility_id": 3, "chip_ids": ["a"]}
    with pytest.raises(FormatError):
        InstallationDeclaration.payload_fields(env)
    with pytest.raises(FormatError, match="lacks the field"):
        ClusterDeclaration.from_envelope(env)  # signed, but not a whole cluster declaration
    wrong_type = Envelope(env.payload, "application/json", env.signatures)
    with pytest.raises(FormatError):
        ClusterDeclaration.payload_fields(wrong_type)


def test_timestamps_are_canonical() -> None:
    t = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert le.timestamp(t) == "2026-03-01T12:00:05Z"
    assert le.parse_timestamp("2026-03-01T12:00:05Z") == t
    assert le.parse_timestamp(le.timestamp(t.replace(microsecond=7))) == t.replace(microsecond=7)
    for bad in ("2026-03-01T12:00:05", "2026-03-01T12:00:05.000000Z", "yesterday"):
        with pytest.raises(FormatError):
            le.parse_timestamp(bad)
