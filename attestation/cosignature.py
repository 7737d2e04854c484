"""C2SP tlog-cosignature v1 (c2sp.org/tlog-cosignature), Ed25519 type 0x04.

A cosignature is a note signature line over a checkpoint whose signed message is::

    cosignature/v1
    time <POSIX seconds>
    <checkpoint note text>

and whose signature is ``u64 big-endian timestamp || Ed25519 signature``. The key ID is
``SHA-256(name || 0x0A || 0x04 || pubkey)[:4]``; vkeys use signature type 0x04.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from attestation.errors import FormatError, SignatureError
from attestation.keys import KEY_SIZE, PrivateKey, PublicKey, b64decode_strict

__all__ = [
    "COSIGNATURE_ALG",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosigned_message",
    "verify_cosignatures",
]

COSIGNATURE_ALG = 0x04
_SIG_PREFIX = "\u2014 "
_HEX8 = re.compile(r"[0-9a-f]{8}")
_MAX_TIMESTAMP = 2**63 - 1


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "+" in name or any(c.isspace() for c in name):
        raise FormatError(f"invalid cosigner name {name!r}")
    return name


def _key_id(name: str, public_key: PublicKey) -> bytes:
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_ALG]) + public_key.raw
    ).digest()[:4]


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 v1 cosignature signs: header, time line, then the note text."""
    if not checkpoint_text.endswith("\n"):
        raise FormatError("checkpoint text must end with a newline")
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise FormatError(f"cosignature timestamp {timestamp} is out of range")
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified cosignature: who signed, and when they say they did."""

    name: str
    key_id: bytes
    timestamp: int
    line: str


class CosignatureVerifier:
    """A trusted witness: name, key ID and Ed25519 public key."""

    __slots__ = ("key_id", "name", "public_key")

    def __init__(self, name: str, public_key: PublicKey) -> None:
        self.name = _check_name(name)
        self.public_key = public_key
        self.key_id = _key_id(name, public_key)

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.name!r}, key_id={self.key_id.hex()})"

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """Parse ``name+hex8+base64(0x04 || pubkey)``; :class:`FormatError` if malformed."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or _HEX8.fullmatch(parts[1]) is None:
            raise FormatError(f"malformed cosigner verifier key {vkey!r}")
        key = b64decode_strict(parts[2], "cosigner verifier key")
        if len(key) != 1 + KEY_SIZE or key[0] != COSIGNATURE_ALG:
            raise FormatError("cosigner verifier key is not an Ed25519 cosignature (0x04) key")
        verifier = cls(parts[0], PublicKey(key[1:]))
        if verifier.key_id.hex() != parts[1]:
            raise FormatError(f"cosigner key id {parts[1]} does not match its name and key")
        return verifier

    def verifier_key(self) -> str:
        raw = bytes([COSIGNATURE_ALG]) + self.public_key.raw
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode('ascii')}"

    def verify_line(self, checkpoint_text: str, line: str) -> Cosignature | None:
        """Verify one signature line; None if it is not this cosigner's (name and key ID).

        :class:`SignatureError` if it is this cosigner's and does not verify.
        """
        parsed = _parse_line(line)
        if parsed is None:
            return None
        name, raw = parsed
        if name != self.name or raw[:4] != self.key_id:
            return None
        if len(raw) != 4 + 8 + 64:
            raise SignatureError(f"cosignature by {name} has the wrong length")
        timestamp = int.from_bytes(raw[4:12], "big")
        try:
            message = cosigned_message(checkpoint_text, timestamp)
        except FormatError as exc:
            raise SignatureError(f"cosignature by {name}: {exc}") from exc
        try:
            self.public_key.verify(raw[12:], message)
        except SignatureError:
            raise SignatureError(f"cosignature by {name} does not verify") from None
        return Cosignature(name, self.key_id, timestamp, line.rstrip("\n") + "\n")


def _parse_line(line: str) -> tuple[str, bytes] | None:
    line = line.rstrip("\n")
    if not line.startswith(_SIG_PREFIX):
        raise FormatError("signature line does not start with an em dash and space")
    name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep or not b64:
        raise FormatError("signature line has no signature")
    raw = b64decode_strict(b64, "signature line")
    if len(raw) < 5:
        raise FormatError("signature is too short")
    return name, raw


class CosignatureSigner:
    """A witness's cosigning key: name plus Ed25519 private key."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, key: PrivateKey) -> None:
        self._key = key
        self._verifier = CosignatureVerifier(name, key.public_key)

    @property
    def name(self) -> str:
        return self._verifier.name

    def verifier(self) -> CosignatureVerifier:
        return self._verifier

    def verifier_key(self) -> str:
        return self._verifier.verifier_key()

    def skey(self) -> str:
        """``PRIVATE+KEY+name+hex8+base64(0x04 || seed)``: the signed-note skey layout."""
        raw = bytes([COSIGNATURE_ALG]) + self._key.seed
        key_id = self._verifier.key_id.hex()
        return f"PRIVATE+KEY+{self.name}+{key_id}+{base64.b64encode(raw).decode('ascii')}"

    @classmethod
    def from_skey(cls, skey: str) -> CosignatureSigner:
        """Parse :meth:`skey` output; :class:`FormatError` (never echoing the secret)."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _HEX8.fullmatch(parts[3]):
            raise FormatError("malformed cosigner signing key")
        raw = b64decode_strict(parts[4], "cosigner signing key")
        if len(raw) != 1 + KEY_SIZE or raw[0] != COSIGNATURE_ALG:
            raise FormatError("cosigner signing key is not an Ed25519 cosignature (0x04) key")
        signer = cls(parts[2], PrivateKey.from_seed(raw[1:]))
        if signer._verifier.key_id.hex() != parts[3]:
            raise FormatError("cosigner signing key id does not match its name and key")
        return signer

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """The signature line (with newline) cosigning ``checkpoint_text`` at ``timestamp``."""
        if timestamp <= 0:
            raise FormatError("a checkpoint cosignature must carry a non-zero timestamp")
        sig = self._key.sign(cosigned_message(checkpoint_text, timestamp))
        raw = self._verifier.key_id + timestamp.to_bytes(8, "big") + sig
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(raw).decode('ascii')}\n"


def verify_cosignatures(
    note: str, verifiers: Sequence[CosignatureVerifier]
) -> tuple[str, list[Cosignature]]:
    """The note text and the valid cosignatures on ``note`` by the given witnesses.

    Lines from unknown keys are ignored; a line from a known witness that fails to verify
    raises :class:`SignatureError` (the note is malformed per signed-note).
    """
    split = note.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no blank line before its signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    found: list[Cosignature] = []
    seen: set[str] = set()
    for line in sigs.splitlines():
        for v in verifiers:
            cosig = v.verify_line(text, line)
            if cosig is not None and v.name not in seen:
                seen.add(v.name)
                found.append(cosig)
    return text, found
