"""Facility power-meter readings: exact bytes, strict parsing, signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from attestation.dsse import Envelope, sign_envelope
from attestation.errors import FormatError, KeyMismatchError, SignatureError
from attestation.keys import PrivateKey
from attestation.meter import (
    READING_PAYLOAD_TYPE,
    READING_TYPE,
    MeterReading,
    encode_reading,
    open_reading,
    parse_reading,
    sign_reading,
    verify_reading,
)

START = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
METER = PrivateKey.from_seed(b"\x03" * 32)


def reading(**kw: Any) -> MeterReading:
    fields: dict[str, Any] = {
        "meter_id": 5,
        "facility_id": 3,
        "window_start": START,
        "window_end": START + timedelta(minutes=15),
        "energy_j": 5.4e10,
    }
    fields.update(kw)
    return MeterReading(**fields)


def test_encoding_exact_bytes() -> None:
    assert encode_reading(reading()) == (
        b'{"energy_j":54000000000.0,"facility_id":3,"meter_id":5,'
        b'"type":"' + READING_TYPE.encode() + b'",'
        b'"window":{"end":"2026-11-22T17:15:00Z","start":"2026-11-22T17:00:00Z"}}'
    )
    assert parse_reading(encode_reading(reading())) == reading()


def test_sign_and_verify() -> None:
    env = Envelope.from_json(sign_reading(reading(), METER).to_json())
    assert env.payload_type == READING_PAYLOAD_TYPE
    assert verify_reading(env, 5, METER.public_key).reading == reading()
    with pytest.raises(SignatureError, match="meter signature"):
        verify_reading(env, 5, PrivateKey.from_seed(b"\x04" * 32).public_key)
    with pytest.raises(KeyMismatchError):
        verify_reading(env, 6, METER.public_key)
    with pytest.raises(FormatError, match="payloadType"):
        open_reading(sign_envelope(env.payload, "application/json", METER))


def _mutated(path: tuple[str, ...], value: Any) -> bytes:
    obj = json.loads(encode_reading(reading()))
    target = obj
    for p in path[:-1]:
        target = target[p]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("type",), "x", "type"),
        (("facility_id",), 0, "facility_id"),
        (("facility_id",), "3", "facility_id"),
        (("facility_id",), True, "facility_id"),
        (("energy_j",), -1.0, "energy_j"),
        (("energy_j",), 1e30, "energy_j"),
        (("energy_j",), False, "energy_j"),
        (("meter_id",), "5", "meter_id"),
        (("meter_id",), 0, "meter_id"),
        (("window", "end"), "2026-11-22T17:00:00Z", "window"),
        (("window", "end"), "2026-11-24T17:00:00Z", "window"),
        (("window", "start"), "2026-11-22 17:00:00Z", "window.start"),
        (("window", "extra"), 1, "window"),
        (("energy_j",), ..., "energy_j"),
    ],
)
def test_strict_parsing_names_the_field(path: tuple[str, ...], value: Any, field: str) -> None:
    with pytest.raises(FormatError, match=field):
        parse_reading(_mutated(path, value))
