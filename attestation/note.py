"""C2SP signed notes (c2sp.org/signed-note), Ed25519 (signature type 0x01) only.

Follows golang.org/x/mod/sumdb/note: signatures from unknown keys are ignored, a signature
from a known key that fails to verify rejects the whole note, and at least one known key must
have signed. These notes carry the log's checkpoints and witnesses' cosignatures.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from attestation.errors import FormatError, SignatureError
from attestation.keys import KEY_SIZE, PrivateKey, PublicKey, b64decode_strict

__all__ = [
    "ED25519_ALG",
    "NoteSigner",
    "NoteVerifier",
    "open_note",
    "signer_from_skey",
]

ED25519_ALG = 0x01
_SIG_PREFIX = "\u2014 "  # em dash, space
_MAX_SIGNATURES = 100  # the spec requires accepting at least 16; Go's limit is 100
# Control characters other than newline are forbidden anywhere in a note.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-f]{8}")


def _check_name(name: str) -> str:
    # Key names must be non-empty with no Unicode spaces and no '+'.
    if not isinstance(name, str) or not name or "+" in name or any(c.isspace() for c in name):
        raise FormatError(f"invalid note key name {name!r}")
    return name


def _key_id(name: str, public_key: PublicKey) -> bytes:
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ED25519_ALG]) + public_key.raw
    ).digest()[:4]


class NoteVerifier:
    """A trusted note key: name, 4-byte key id and Ed25519 public key."""

    __slots__ = ("key_id", "name", "public_key")

    def __init__(self, name: str, public_key: PublicKey) -> None:
        self.name = _check_name(name)
        self.public_key = public_key
        self.key_id = _key_id(name, public_key)

    def __repr__(self) -> str:
        return f"NoteVerifier({self.name!r}, key_id={self.key_id.hex()})"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+hex8+base64(0x01 || pubkey)``; :class:`FormatError` if malformed.

        Only the first two '+' separate fields: the base64 part may itself contain '+'.
        """
        parts = vkey.split("+", 2)
        if len(parts) != 3 or _HEX8.fullmatch(parts[1]) is None:
            raise FormatError(f"malformed verifier key {vkey!r}")
        name, key_id_hex, key_b64 = parts
        key = b64decode_strict(key_b64, "verifier key")
        if len(key) != 1 + KEY_SIZE or key[0] != ED25519_ALG:
            raise FormatError("verifier key is not an Ed25519 (type 0x01) key")
        verifier = cls(name, PublicKey(key[1:]))
        if verifier.key_id.hex() != key_id_hex:
            raise FormatError(f"verifier key id {key_id_hex} does not match its name and key")
        return verifier

    def verifier_key(self) -> str:
        """Encode as a vkey string."""
        raw = bytes([ED25519_ALG]) + self.public_key.raw
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode('ascii')}"

    def verify(self, text: bytes, sig: bytes) -> bool:
        """Whether ``sig`` (without the key id prefix) is a valid signature over ``text``."""
        try:
            self.public_key.verify(sig, text)
        except SignatureError:
            return False
        return True


class NoteSigner:
    """A note signing key: name plus Ed25519 private key."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, key: PrivateKey) -> None:
        self._key = key
        self._verifier = NoteVerifier(name, key.public_key)

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, key_id={self.key_id.hex()})"

    @property
    def name(self) -> str:
        """The key name written on signature lines."""
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        """``SHA-256(name || 0x0A || 0x01 || pubkey)[:4]``."""
        return self._verifier.key_id

    @property
    def private_key(self) -> PrivateKey:
        """The Ed25519 key itself (the log also signs its audit bundles with it)."""
        return self._key

    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return self._verifier

    def verifier_key(self) -> str:
        """The vkey string ``name+hex8+base64(0x01 || pubkey)`` for this signer."""
        return self._verifier.verifier_key()

    def signature_line(self, text: str) -> str:
        """Just the ``— name base64(keyid || sig)`` line (with newline) for ``text``."""
        _check_text(text)
        sig = self._key.sign(text.encode("utf-8"))
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(self.key_id + sig).decode('ascii')}\n"

    def sign(self, text: str) -> str:
        """The signed note: ``text``, a blank line and this signer's signature line."""
        return text + "\n" + self.signature_line(text)


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise FormatError("note text must end with a newline")
    if _CONTROL.search(text):
        raise FormatError("note text contains control characters")


def signer_from_skey(skey: str) -> NoteSigner:
    """Parse ``PRIVATE+KEY+name+hex8+base64(0x01 || seed)``; :class:`FormatError` if malformed."""
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or _HEX8.fullmatch(parts[3]) is None:
        raise FormatError("malformed signer key")  # never echo secret material
    key = b64decode_strict(parts[4], "signer key")
    if len(key) != 1 + KEY_SIZE or key[0] != ED25519_ALG:
        raise FormatError("signer key is not an Ed25519 (type 0x01) key")
    signer = NoteSigner(parts[2], PrivateKey.from_seed(key[1:]))
    if signer.key_id.hex() != parts[3]:
        raise FormatError("signer key id does not match its name and key")
    return signer


def open_note(
    note: str | bytes, verifiers: Sequence[NoteVerifier]
) -> tuple[str, list[NoteVerifier]]:
    """Verify a signed note; return its text and the verifiers whose signatures verified.

    Raises :class:`FormatError` if the note is malformed and :class:`SignatureError` if a known
    key's signature fails or no known key signed it. Unknown signers are ignored.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("note is not valid UTF-8") from None
    if _CONTROL.search(note):
        raise FormatError("note contains control characters")
    # The text ends at the last blank line; it keeps its final newline.
    split = note.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no blank line before its signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    if not sigs.endswith("\n"):
        raise FormatError("note signature block must end with a newline")
    lines = sigs[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise FormatError(f"note has more than {_MAX_SIGNATURES} signatures")

    known = {(v.name, v.key_id): v for v in verifiers}
    text_bytes = text.encode("utf-8")
    verified: list[NoteVerifier] = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise FormatError("note signature line does not start with an em dash and space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not b64:
            raise FormatError("note signature line has no signature")
        _check_name(name)
        raw = b64decode_strict(b64, "note signature")
        if len(raw) < 5:
            raise FormatError("note signature is too short")
        v = known.get((name, raw[:4]))
        if v is None or v in verified:  # unknown key, or a repeated signature of one key
            continue
        if not v.verify(text_bytes, raw[4:]):
            raise SignatureError(f"note signature by {name} does not verify")
        verified.append(v)
    if not verified:
        raise SignatureError("note is not signed by any known key")
    return text, verified
