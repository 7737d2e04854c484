"""The one error tree of the protocol core, split by cause.

Every error carries a stable machine-readable ``code``; the registry maps these to HTTP
problem responses in one place, and partners' tooling can rely on the codes.
"""

from __future__ import annotations

__all__ = [
    "AttestationError",
    "CertificateError",
    "DuplicateKeyError",
    "FormatError",
    "KeyMismatchError",
    "ProofError",
    "SignatureError",
]


class AttestationError(Exception):
    """Root of every error raised by :mod:`attestation`."""

    code = "attestation_error"


class FormatError(AttestationError):
    """Bytes that do not parse as the format they claim to be (JSON, base64, fields, ranges)."""

    code = "malformed"


class DuplicateKeyError(FormatError):
    """A JSON object that names one key twice: parsers disagree on which value wins."""

    code = "duplicate_json_key"


class SignatureError(AttestationError):
    """A signature that does not verify under the expected key."""

    code = "bad_signature"


class KeyMismatchError(AttestationError):
    """A well-formed, validly signed object that names a different key or subject than expected."""

    code = "key_mismatch"


class CertificateError(AttestationError):
    """An endorsement certificate or vendor root that is malformed, expired or not chained."""

    code = "bad_certificate"


class ProofError(AttestationError):
    """A Merkle inclusion or consistency proof that does not verify."""

    code = "bad_proof"
