"""Landmark challenges and RTT measurements: exact bytes, strict parsing, both signatures."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from attestation.dsse import Envelope, Signature, pae, sign_envelope
from attestation.errors import FormatError, KeyMismatchError, SignatureError
from attestation.keys import PrivateKey
from attestation.landmark import (
    CHALLENGE_PAYLOAD_TYPE,
    MEASUREMENT_PAYLOAD_TYPE,
    MEASUREMENT_TYPE,
    LandmarkMeasurement,
    challenge_message,
    encode_measurement,
    open_measurement,
    parse_measurement,
    sign_challenge,
    sign_measurement,
    verify_challenge_answer,
    verify_measurement,
)

NONCE = "ab" * 32
AT = datetime(2026, 11, 22, 17, 3, 9, tzinfo=UTC)
CHIP = PrivateKey.from_seed(b"\x01" * 32)
LANDMARK = PrivateKey.from_seed(b"\x02" * 32)


def measurement(**kw: Any) -> LandmarkMeasurement:
    fields: dict[str, Any] = {
        "landmark_id": 7,
        "chip_id": "NV-H100-0001",
        "nonce": NONCE,
        "chip_signature": sign_challenge(7, "NV-H100-0001", NONCE, CHIP),
        "rtt_ms": 12.5,
        "measured_at": AT,
    }
    fields.update(kw)
    return LandmarkMeasurement(**fields)


def test_challenge_message_exact_bytes() -> None:
    assert challenge_message(7, "NV-H100-0001", NONCE) == (
        b"chipreg-challenge/v1\n7\nNV-H100-0001\n" + NONCE.encode() + b"\n"
    )


def test_chip_answer_verifies_only_for_its_own_challenge() -> None:
    sig = sign_challenge(7, "NV-H100-0001", NONCE, CHIP)
    # The signature is over the DSSE PAE of the challenge message, domain-separated by type.
    msg = pae(CHALLENGE_PAYLOAD_TYPE, challenge_message(7, "NV-H100-0001", NONCE))
    CHIP.public_key.verify(sig, msg)
    verify_challenge_answer(7, "NV-H100-0001", NONCE, sig, CHIP.public_key)
    for args in (
        (8, "NV-H100-0001", NONCE),
        (7, "NV-H100-0002", NONCE),
        (7, "NV-H100-0001", "cd" * 32),
    ):
        with pytest.raises(SignatureError):
            verify_challenge_answer(*args, sig, CHIP.public_key)
    with pytest.raises(SignatureError):
        verify_challenge_answer(7, "NV-H100-0001", NONCE, sig, LANDMARK.public_key)


def test_measurement_encoding_is_compact_sorted_json() -> None:
    m = measurement()
    payload = encode_measurement(m)
    obj = json.loads(payload)
    assert obj == {
        "chip_id": "NV-H100-0001",
        "chip_signature": base64.b64encode(m.chip_signature).decode(),
        "landmark_id": 7,
        "measured_at": "2026-11-22T17:03:09Z",
        "nonce": NONCE,
        "rtt_ms": 12.5,
        "type": MEASUREMENT_TYPE,
    }
    assert payload == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    assert parse_measurement(payload) == m


def test_sign_and_verify_measurement() -> None:
    env = sign_measurement(measurement(), LANDMARK)
    assert env.payload_type == MEASUREMENT_PAYLOAD_TYPE
    parsed = Envelope.from_json(env.to_json())
    verified = verify_measurement(parsed, 7, LANDMARK.public_key)
    assert verified.measurement == measurement()
    assert verified.payload == env.payload
    with pytest.raises(SignatureError, match="landmark signature"):
        verify_measurement(parsed, 7, CHIP.public_key)
    with pytest.raises(KeyMismatchError):
        verify_measurement(parsed, 9, LANDMARK.public_key)


def test_envelope_shape_is_checked() -> None:
    env = sign_measurement(measurement(), LANDMARK)
    with pytest.raises(FormatError, match="payloadType"):
        open_measurement(sign_envelope(env.payload, "application/json", LANDMARK))
    two = Envelope(env.payload, env.payload_type, (*env.signatures, Signature("", b"x" * 64)))
    with pytest.raises(FormatError, match="exactly one"):
        open_measurement(two)


def _mutated(**changes: Any) -> bytes:
    obj = json.loads(encode_measurement(measurement()))
    for k, v in changes.items():
        if v is ...:
            del obj[k]
        else:
            obj[k] = v
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": "x"}, "type"),
        ({"rtt_ms": 0}, "rtt_ms"),
        ({"rtt_ms": -1.0}, "rtt_ms"),
        ({"rtt_ms": 1e9}, "rtt_ms"),
        ({"rtt_ms": True}, "rtt_ms"),
        ({"rtt_ms": "12"}, "rtt_ms"),
        ({"nonce": "AB" * 32}, "nonce"),
        ({"nonce": "ab" * 31}, "nonce"),
        ({"chip_signature": base64.b64encode(b"x" * 63).decode()}, "chip_signature"),
        ({"chip_signature": "not base64!"}, "chip_signature"),
        ({"landmark_id": "7"}, "landmark_id"),
        ({"landmark_id": 0}, "landmark_id"),
        ({"landmark_id": True}, "landmark_id"),
        ({"chip_id": ""}, "chip_id"),
        ({"measured_at": "2026-11-22T17:03:09.5Z"}, "measured_at"),
        ({"extra": 1}, "extra"),
        ({"nonce": ...}, "nonce"),
    ],
)
def test_strict_parsing_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(FormatError, match=field):
        parse_measurement(_mutated(**changes))


def test_duplicate_keys_are_rejected() -> None:
    payload = encode_measurement(measurement())
    dup = payload[:-1] + b',"rtt_ms":1.0}'
    with pytest.raises(FormatError, match="duplicate"):
        parse_measurement(dup)
