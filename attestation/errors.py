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
    "GpuChainError",
    "GpuEvidenceError",
    "GpuEvidenceFormatError",
    "GpuExpiredError",
    "GpuNonceError",
    "GpuSignatureError",
    "GpuWrongRootError",
    "KeyFormatError",
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


class KeyFormatError(FormatError):
    """A public key that is not one: bad base64 or PEM, not 32 bytes, small order, not canonical."""

    code = "bad_public_key"


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


# GPU device evidence (attestation.gpu): one subtree, so a caller can catch every GPU evidence
# failure at once, while each class still belongs to the general cause it is an instance of
# (a bad GPU signature is a SignatureError). Codes are distinct per cause: an operator reading
# "gpu_wrong_root" knows to look at configuration, "gpu_nonce_mismatch" at a replay.


class GpuEvidenceError(AttestationError):
    """Root of every failure to verify NVIDIA GPU device evidence."""

    code = "gpu_evidence_invalid"


class GpuEvidenceFormatError(GpuEvidenceError, FormatError):
    """Evidence bytes that do not parse: truncated, trailing bytes, bad lengths, bad DER/PEM."""

    code = "gpu_evidence_malformed"


class GpuNonceError(GpuEvidenceError):
    """Well-formed evidence answering another nonce than the one the verifier asked for."""

    code = "gpu_nonce_mismatch"


class GpuSignatureError(GpuEvidenceError, SignatureError):
    """The SPDM measurement signature does not verify under the attestation leaf key."""

    code = "gpu_bad_signature"


class GpuChainError(GpuEvidenceError, CertificateError):
    """The device certificate chain is broken: a link, a CA flag, a key usage, a path length."""

    code = "gpu_chain_invalid"


class GpuWrongRootError(GpuChainError):
    """The chain is internally consistent but ends at a root other than the configured one."""

    code = "gpu_wrong_root"


class GpuExpiredError(GpuChainError):
    """A certificate of the chain (or the root) is outside its validity period at the given time."""

    code = "gpu_cert_expired"
