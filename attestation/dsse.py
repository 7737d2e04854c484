"""DSSE v1 envelopes (secure-systems-lab/dsse): the signed wrapper around usage statements.

Signatures cover the pre-authentication encoding (PAE) of the payload type and the exact
payload bytes, so a verifier never re-serialises anything it checks.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from attestation._json import check_keys, loads_strict
from attestation.errors import FormatError, SignatureError
from attestation.keys import PrivateKey, PublicKey, b64decode_strict

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "Envelope",
    "Signature",
    "pae",
    "sign_envelope",
    "verify_envelope",
]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

# json.dumps's own string encoder (ensure_ascii=True), for Envelope.to_json.
_escape = json.encoder.encode_basestring_ascii
_ENVELOPE_KEYS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_KEYS = frozenset({"keyid", "sig"})


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


@dataclass(frozen=True, slots=True)
class Signature:
    """One DSSE signature. ``keyid`` is an unauthenticated hint naming the key."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope. ``payload`` is the exact signed bytes (already base64-decoded)."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        """Parse an envelope from JSON text; strict, :class:`FormatError` on any deviation."""
        return cls.from_dict(loads_strict(data, "DSSE envelope"))

    @classmethod
    def from_dict(cls, obj: object) -> Envelope:
        """Build an envelope from decoded JSON; strict, :class:`FormatError` on any deviation."""
        obj = check_keys(obj, _ENVELOPE_KEYS, "DSSE envelope")
        payload_b64, payload_type, raw_sigs = obj["payload"], obj["payloadType"], obj["signatures"]
        if not isinstance(payload_b64, str):
            raise FormatError("DSSE envelope payload must be a base64 string")
        if not isinstance(payload_type, str) or not payload_type:
            raise FormatError("DSSE envelope payloadType must be a non-empty string")
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise FormatError("DSSE envelope signatures must be a non-empty list")
        sigs = []
        for i, s in enumerate(raw_sigs):
            if not isinstance(s, dict) or "sig" not in s or not s.keys() <= _SIGNATURE_KEYS:
                raise FormatError(f"DSSE signatures[{i}] must be an object with sig and keyid")
            keyid, sig = s.get("keyid", ""), s["sig"]
            if not isinstance(keyid, str) or not isinstance(sig, str):
                raise FormatError(f"DSSE signatures[{i}] keyid and sig must be strings")
            sigs.append(Signature(keyid, b64decode_strict(sig, f"DSSE signatures[{i}].sig")))
        payload = b64decode_strict(payload_b64, "DSSE envelope payload")
        return cls(payload, payload_type, tuple(sigs))

    def to_dict(self) -> dict[str, object]:
        """The JSON object form, with base64 payload and signatures."""
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys, compact); also the transparency-log leaf data.

        Exactly ``json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))``, written
        out (ingest stores one per report): base64 needs no escaping, the two free-form strings
        are escaped by the same function ``json.dumps`` uses.
        """
        sigs = ",".join(
            f'{{"keyid":{_escape(s.keyid)},"sig":"{base64.b64encode(s.sig).decode("ascii")}"}}'
            for s in self.signatures
        )
        payload = base64.b64encode(self.payload).decode("ascii")
        return (
            f'{{"payload":"{payload}","payloadType":{_escape(self.payload_type)},'
            f'"signatures":[{sigs}]}}'
        ).encode("ascii")


def sign_envelope(payload: bytes, payload_type: str, key: PrivateKey) -> Envelope:
    """Sign ``payload`` with Ed25519 over its PAE; the keyid is the key's key id."""
    sig = key.sign(pae(payload_type, payload))
    return Envelope(payload, payload_type, (Signature(key.public_key.key_id, sig),))


def verify_envelope(envelope: Envelope, key: PublicKey) -> bytes:
    """Return the payload if some signature verifies under ``key``; else :class:`SignatureError`.

    Every signature is tried regardless of its ``keyid``, which is not authenticated.
    """
    message = pae(envelope.payload_type, envelope.payload)
    for s in envelope.signatures:
        try:
            key.verify(s.sig, message)
        except SignatureError:
            continue
        return envelope.payload
    raise SignatureError(f"no envelope signature verifies under key {key.key_id}")
