"""Ed25519 keys (PROTOCOL.md section 1.1): raw encodings, key ids, PEM, sign and verify.

Signing and PEM go through ``cryptography`` (OpenSSL). Verification follows the registry's
strict rule in :mod:`attestation.ed25519` (what both OpenSSL and libsodium accept), checked on
libsodium; the protocol forbids the looser ZIP-215 rules.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from attestation import ed25519
from attestation.errors import FormatError, KeyFormatError, SignatureError

__all__ = [
    "KEY_SIZE",
    "SIGNATURE_SIZE",
    "PrivateKey",
    "PublicKey",
    "b64decode_strict",
    "is_small_order",
]

KEY_SIZE = 32
SIGNATURE_SIZE = 64

# OpenSSL's RFC 8032 verification does NOT reject small-order public keys: under the identity
# point (encoded 01 00..00) the signature R = identity, S = 0 verifies for EVERY message. So
# PublicKey refuses the eight small-order points, and non-canonical encodings (which libsodium
# refuses), when a key is built, before anything is verified with it.
is_small_order = ed25519.is_small_order


def b64decode_strict(s: str | bytes, what: str) -> bytes:
    """Decode standard padded base64, rejecting any non-alphabet byte; :class:`FormatError`."""
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:  # ValueError: non-ASCII str input
        raise FormatError(f"{what}: invalid base64 ({e})") from None


# Not slotted: ``cached_property`` stores into the instance ``__dict__``, which also works on a
# frozen dataclass because it bypasses ``__setattr__``.
@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key in its raw 32-byte RFC 8032 encoding."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != KEY_SIZE:
            raise KeyFormatError(f"an Ed25519 public key is {KEY_SIZE} raw bytes")
        if is_small_order(self.raw):
            raise KeyFormatError("Ed25519 public key is a small-order point")
        if not ed25519.is_canonical_point(self.raw):
            raise KeyFormatError("Ed25519 public key encoding is not canonical")

    @classmethod
    def from_b64(cls, s: str) -> PublicKey:
        """Decode ``base64(raw public key)``, the API encoding."""
        try:
            raw = b64decode_strict(s, "public key")
        except FormatError as e:
            raise KeyFormatError(str(e)) from None
        return cls(raw)

    def to_b64(self) -> str:
        """Encode as ``base64(raw public key)``."""
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        """Load a PEM SubjectPublicKeyInfo that must hold an Ed25519 key."""
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise KeyFormatError(f"invalid public key PEM: {e}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFormatError(f"public key is {type(key).__name__}, not Ed25519")
        return cls(key.public_bytes_raw())

    def to_pem(self) -> bytes:
        """Encode as PEM SubjectPublicKeyInfo."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @cached_property
    def key_id(self) -> str:
        """``hex(SHA-256(raw))``: the name of this key in DSSE signatures and report subjects."""
        return hashlib.sha256(self.raw).hexdigest()

    @cached_property
    def _key(self) -> Ed25519PublicKey:
        # Built once per instance: callers on the ingest path keep PublicKey objects around, and
        # re-importing the key into OpenSSL for every signature would dominate verification.
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def to_cryptography(self) -> Ed25519PublicKey:
        """The equivalent ``cryptography`` key object."""
        return self._key

    def verify(self, signature: bytes, message: bytes) -> None:
        """Verify an Ed25519 ``signature`` over ``message``; :class:`SignatureError` if invalid."""
        if not ed25519.verify_with_checked_key(self.raw, signature, message):
            raise SignatureError(f"signature does not verify under key {self.key_id}")


class PrivateKey:
    """An Ed25519 signing key. Its repr never shows secret material."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        if not isinstance(key, Ed25519PrivateKey):
            raise FormatError(f"private key is {type(key).__name__}, not Ed25519")
        self._key = key
        self._public = PublicKey(key.public_key().public_bytes_raw())

    def __repr__(self) -> str:
        return f"PrivateKey(public={self._public.key_id[:16]}...)"

    @classmethod
    def generate(cls) -> PrivateKey:
        """A fresh random key from the OS CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """The key with the given 32-byte RFC 8032 seed."""
        if not isinstance(seed, bytes) or len(seed) != KEY_SIZE:
            raise FormatError(f"an Ed25519 seed is {KEY_SIZE} bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed(self) -> bytes:
        """The 32-byte RFC 8032 seed."""
        return self._key.private_bytes_raw()

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return self._public

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(message)

    @classmethod
    def from_pem(cls, pem: bytes) -> PrivateKey:
        """Load an unencrypted PEM PKCS#8 Ed25519 private key."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise FormatError(f"invalid private key PEM: {e}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise FormatError(f"private key is {type(key).__name__}, not Ed25519")
        return cls(key)

    def to_pem(self) -> bytes:
        """Encode as unencrypted PEM PKCS#8."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def to_cryptography(self) -> Ed25519PrivateKey:
        """The underlying ``cryptography`` key object."""
        return self._key
