"""DSSE envelopes: the published PAE/ECDSA vector, Ed25519 signing, strict parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from attestation.dsse import (
    INTOTO_PAYLOAD_TYPE,
    Envelope,
    Signature,
    pae,
    sign_envelope,
    verify_envelope,
)
from attestation.errors import FormatError, SignatureError
from attestation.keys import PrivateKey

from .conftest import load_json


@pytest.fixture(scope="module")
def vector(vectors_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = load_json(vectors_dir / "dsse" / "dsse_vectors.json")
    return data


def test_pae_vector(vector: dict[str, Any]) -> None:
    got = pae(vector["payloadType"], vector["payload_utf8"].encode())
    assert got == bytes.fromhex(vector["pae_hex"])
    assert got == vector["pae_utf8"].encode()


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("tÿpe", b"\xff\x00") == b"DSSEv1 5 t\xc3\xbfpe 2 \xff\x00"
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_vector_envelope_and_ecdsa_signature(vector: dict[str, Any]) -> None:
    env = Envelope.from_dict(vector["envelope"])
    assert env.payload == vector["payload_utf8"].encode()
    assert env.payload_type == vector["payloadType"]
    assert env.signatures[0].keyid == "66301bbf"
    assert env.to_dict() == vector["envelope"]
    assert Envelope.from_json(json.dumps(vector["envelope"])) == env

    # The vector is ECDSA P-256 (our envelopes are Ed25519): verify it with cryptography over
    # our PAE bytes, which is the part of the vector that exercises this module.
    p = vector["ecdsa_p256"]
    pub = ec.EllipticCurvePublicNumbers(int(p["x"]), int(p["y"]), ec.SECP256R1()).public_key()
    raw = env.signatures[0].sig
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    pub.verify(der, pae(env.payload_type, env.payload), ec.ECDSA(hashes.SHA256()))

    # RFC 6979 nonces make it reproducible from d, byte for byte.
    priv = ec.derive_private_key(int(p["d"]), ec.SECP256R1())
    assert priv.public_key().public_numbers() == pub.public_numbers()
    again = priv.sign(
        pae(env.payload_type, env.payload), ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    )
    r, s = decode_dss_signature(again)
    assert r.to_bytes(32, "big") + s.to_bytes(32, "big") == raw


def test_sign_and_verify(chip_key: PrivateKey, other_key: PrivateKey) -> None:
    env = sign_envelope(b'{"a":1}', INTOTO_PAYLOAD_TYPE, chip_key)
    assert env.signatures[0].keyid == chip_key.public_key.key_id
    chip_key.public_key.verify(env.signatures[0].sig, pae(INTOTO_PAYLOAD_TYPE, b'{"a":1}'))
    assert verify_envelope(env, chip_key.public_key) == b'{"a":1}'
    with pytest.raises(SignatureError):
        verify_envelope(env, other_key.public_key)
    # Canonical JSON round trip.
    data = env.to_json()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert Envelope.from_json(data) == env
    assert Envelope.from_json(data.decode()) == env


@pytest.mark.parametrize(
    "payload_type",
    [INTOTO_PAYLOAD_TYPE, 'a"quote\\back', "caf\u00e9 \U0001f600", "ctl\x00\x1f\n\t", "\ud800"],
)
def test_to_json_is_json_dumps_of_to_dict(chip_key: PrivateKey, payload_type: str) -> None:
    """The hand-written canonical form is byte for byte what json.dumps writes."""
    sig = sign_envelope(b"\x00\xff payload", INTOTO_PAYLOAD_TYPE, chip_key).signatures[0]
    env = Envelope(b"\x00\xff payload", payload_type, (sig,))
    odd = Envelope(env.payload, payload_type, (sig, Signature(payload_type, b"")))
    for e in (env, odd, Envelope(b"", payload_type, ())):
        want = json.dumps(e.to_dict(), sort_keys=True, separators=(",", ":")).encode("utf-8")
        assert e.to_json() == want


def test_any_signature_may_verify(chip_key: PrivateKey, other_key: PrivateKey) -> None:
    a = sign_envelope(b"x", "t", chip_key)
    b = sign_envelope(b"x", "t", other_key)
    both = Envelope(b"x", "t", (b.signatures[0], a.signatures[0]))
    assert verify_envelope(both, chip_key.public_key) == b"x"
    assert verify_envelope(both, other_key.public_key) == b"x"
    # keyid is only a hint: a wrong keyid does not stop a valid signature from verifying.
    relabelled = Envelope(b"x", "t", (Signature("nonsense", a.signatures[0].sig),))
    assert verify_envelope(relabelled, chip_key.public_key) == b"x"


@pytest.mark.parametrize("part", ["payload", "sig", "type"])
def test_tampering_is_detected(chip_key: PrivateKey, part: str) -> None:
    env = sign_envelope(b"payload bytes", INTOTO_PAYLOAD_TYPE, chip_key)
    sig = env.signatures[0]
    if part == "payload":
        env = Envelope(b"payload byteS", env.payload_type, env.signatures)
    elif part == "sig":
        env = Envelope(
            env.payload,
            env.payload_type,
            (Signature(sig.keyid, sig.sig[:-1] + bytes([sig.sig[-1] ^ 1])),),
        )
    else:
        env = Envelope(env.payload, "application/json", env.signatures)
    with pytest.raises(SignatureError):
        verify_envelope(env, chip_key.public_key)


GOOD: dict[str, Any] = {
    "payload": base64.b64encode(b"hi").decode(),
    "payloadType": "t",
    "signatures": [{"keyid": "k", "sig": base64.b64encode(b"\x00" * 64).decode()}],
}


def _with(**changes: Any) -> dict[str, Any]:
    d = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is ...:
            del d[k]
        else:
            d[k] = v
    return d


@pytest.mark.parametrize(
    "obj",
    [
        [],
        "envelope",
        None,
        _with(extra=1),
        _with(payload=...),
        _with(payloadType=...),
        _with(signatures=...),
        _with(payload="aGk"),  # missing padding
        _with(payload="aG k="),
        _with(payload="aGk=\n"),
        _with(payload="aGk-"),
        _with(payload=5),
        _with(payloadType=5),
        _with(payloadType=""),
        _with(signatures=[]),
        _with(signatures={}),
        _with(signatures=["sig"]),
        _with(signatures=[{"keyid": "k"}]),
        _with(signatures=[{"keyid": "k", "sig": "AA==", "extra": 1}]),
        _with(signatures=[{"keyid": 1, "sig": "AA=="}]),
        _with(signatures=[{"keyid": "k", "sig": "not base64!"}]),
    ],
)
def test_from_dict_rejects(obj: object) -> None:
    with pytest.raises(FormatError):
        Envelope.from_dict(obj)


def test_keyid_is_optional_per_dsse() -> None:
    env = Envelope.from_dict(_with(signatures=[{"sig": "AA=="}]))
    assert env.signatures == (Signature("", b"\x00"),)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b'{"payload":"aGk=","payload":"aGk=","payloadType":"t","signatures":[{"sig":"AA=="}]}',
        b'{"payload":"aGk=","payloadType":"t","signatures":[{"sig":"AA=="}],"x":NaN}',
        b"[" * 100000 + b"]" * 100000,
    ],
)
def test_from_json_rejects(data: bytes) -> None:
    with pytest.raises(FormatError):
        Envelope.from_json(data)
