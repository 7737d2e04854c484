"""Verify NVIDIA GPU device evidence: an SPDM attestation report and its certificate chain.

The evidence is what NVML returns on a confidential-computing GPU (Hopper and later):
``nvmlDeviceGetConfComputeGpuAttestationReport`` gives the report (GET_MEASUREMENTS request ||
MEASUREMENTS response, see :mod:`attestation.spdm`) and ``nvmlDeviceGetConfComputeGpuCertificate``
the attestation certificate chain as concatenated PEM, leaf first:

    attestation key ("GSP FMC LF", DICE alias, re-issued with firmware)
    device identity ("GSP BROM", one per GPU, issued at manufacture)
    provisioner ICA -> product identity CA -> "NVIDIA Device Identity CA" (the root)

:func:`verify_gpu_evidence` checks, in this order: the report parses; the chain links up to
the configured root with CA flags, key usages and path lengths respected and every
certificate valid at the given time; the report answers the expected nonce; the P-384
signature over the SPDM 1.1 transcript verifies under the leaf key; and the firmware id
the report states matches the one the leaf certificate was issued for. Each failure is its
own :class:`attestation.errors.GpuEvidenceError` subclass. No revocation (OCSP) check: that
needs the network and belongs to the caller.

Pure: bytes, a root and a time in; frozen claims out.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtensionOID, NameOID

from attestation.errors import (
    FormatError,
    GpuChainError,
    GpuEvidenceFormatError,
    GpuExpiredError,
    GpuNonceError,
    GpuSignatureError,
    GpuWrongRootError,
)
from attestation.spdm import (
    NONCE_SIZE,
    OPAQUE_DRIVER_VERSION,
    OPAQUE_FWID,
    OPAQUE_VBIOS_VERSION,
    AttestationReport,
    MeasurementBlock,
    OpaqueField,
    format_vbios_version,
    parse_attestation_report,
)

__all__ = [
    "ENROLLMENT_BINDING",
    "MAX_CHAIN_LENGTH",
    "REATTESTATION_BINDING",
    "GpuEvidence",
    "GpuEvidenceClaims",
    "GpuRoot",
    "bind_spdm_nonce",
    "load_gpu_root",
    "split_pem_chain",
    "verify_gpu_evidence",
]

# Domain-separation strings of the SPDM nonce binding (docs/PROTOCOL.md, "GPU evidence").
ENROLLMENT_BINDING = b"chipreg/gpu-attestation/enrollment/v1\x00"
REATTESTATION_BINDING = b"chipreg/gpu-attestation/reattestation/v1\x00"
# NVIDIA's chains have five certificates with the root; leave room, refuse absurd inputs.
MAX_CHAIN_LENGTH = 8
_PEM_END = b"-----END CERTIFICATE-----"
# TCG DICE TcbInfo (2.23.133.5.4.1) and its older multi-TcbInfo arc: carry the leaf's FWID.
_DICE_TCB_INFO_OIDS = frozenset({"2.23.133.5.4.1", "2.23.133.5.4.1.1"})
# Extensions a verifier here understands; any other one marked critical fails the chain.
_UNDERSTOOD = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS.dotted_string,
        ExtensionOID.KEY_USAGE.dotted_string,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string,
        ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS.dotted_string,
        *_DICE_TCB_INFO_OIDS,
    }
)


@dataclass(frozen=True)
class GpuEvidence:
    """GPU evidence as collected: the attestation report and the DER chain, leaf first."""

    report: bytes
    cert_chain: tuple[bytes, ...]


@dataclass(frozen=True)
class GpuRoot:
    """A configured GPU device root CA (for NVIDIA: the "NVIDIA Device Identity CA")."""

    der: bytes
    subject: str
    fingerprint: str  # SHA-256 of the DER certificate, hex
    certificate: x509.Certificate


@dataclass(frozen=True)
class GpuEvidenceClaims:
    """What verified GPU evidence says.

    ``hardware_id`` names the GPU: the SHA-256 (hex) of the device identity certificate's
    SubjectPublicKeyInfo. That key is fused per GPU at manufacture and survives firmware
    updates, which re-issue the attestation (alias) key and its certificate.
    """

    hardware_id: str
    device_serial: str | None  # serialNumber attribute of the device identity subject
    hardware_model: str | None  # commonName of the device identity subject ("GH100 A01 GSP BROM")
    ueid: str  # NVIDIA's "ueid": the attestation certificate's serial number, decimal
    attestation_key_fingerprint: str  # SHA-256 of the leaf SubjectPublicKeyInfo, hex
    root_fingerprint: str
    nonce: bytes  # the requester's nonce the GPU signed over
    responder_nonce: bytes
    spdm_version: int
    measurements: tuple[MeasurementBlock, ...]
    opaque_fields: tuple[OpaqueField, ...]
    driver_version: str | None
    vbios_version: str | None
    fwid: bytes | None


def bind_spdm_nonce(binding: bytes, chip_public_key: bytes, registry_nonce: bytes) -> bytes:
    """The 32-byte SPDM nonce a GPU must sign: SHA-256(binding || chip key || registry nonce).

    ``binding`` is :data:`ENROLLMENT_BINDING` or :data:`REATTESTATION_BINDING`,
    ``chip_public_key`` the chip's raw 32-byte Ed25519 key, ``registry_nonce`` the 32 bytes the
    registry issued. The GPU's signature over this nonce thus commits to the chip key and to a
    fresh registry challenge, and cannot be replayed for another chip or another purpose.
    """
    if binding not in (ENROLLMENT_BINDING, REATTESTATION_BINDING):
        raise FormatError("unknown nonce binding")
    if len(chip_public_key) != 32 or len(registry_nonce) != NONCE_SIZE:
        raise FormatError("chip key and registry nonce must be 32 bytes each")
    return hashlib.sha256(binding + chip_public_key + registry_nonce).digest()


def _parse_der(der: bytes, what: str) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(der)
        # Force the lazy parts now, so a malformed extension is a format error here rather
        # than a surprise later.
        _ = cert.extensions
        _ = cert.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise GpuEvidenceFormatError(f"{what} is not a readable X.509 certificate: {e}") from None
    return cert


def split_pem_chain(pem: bytes) -> tuple[bytes, ...]:
    """Split NVML's concatenated-PEM certificate chain into DER certificates, leaf first.

    Strict: only certificate blocks and whitespace between them; each block must decode.
    """
    if not isinstance(pem, bytes):
        raise GpuEvidenceFormatError("a PEM certificate chain must be bytes")
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise GpuEvidenceFormatError(f"certificate chain is not PEM: {e}") from None
    # load_pem_x509_certificates skips text between blocks; refuse anything but whitespace.
    rest = pem
    for _ in certs:
        head, sep, rest = rest.partition(_PEM_END)
        if not sep or not head.strip().startswith(b"-----BEGIN CERTIFICATE-----"):
            raise GpuEvidenceFormatError("certificate chain has text outside certificate blocks")
    if rest.strip():
        raise GpuEvidenceFormatError("certificate chain has trailing text")
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certs)


def load_gpu_root(pem_or_der: bytes) -> GpuRoot:
    """Parse and self-check a GPU root CA certificate (PEM or DER).

    Raises :class:`GpuEvidenceFormatError` if it does not parse and :class:`GpuChainError` if
    it is not a self-signed P-384 CA. Validity is checked at verification time, not here.
    """
    if not isinstance(pem_or_der, bytes):
        raise GpuEvidenceFormatError("a root certificate must be bytes")
    if pem_or_der.lstrip().startswith(b"-----BEGIN"):
        ders = split_pem_chain(pem_or_der)
        if len(ders) != 1:
            raise GpuEvidenceFormatError(f"root PEM holds {len(ders)} certificates, want one")
        der = ders[0]
    else:
        der = pem_or_der
    cert = _parse_der(der, "GPU root certificate")
    if cert.issuer != cert.subject:
        raise GpuChainError("GPU root certificate is not self-issued")
    _p384_key(cert, "GPU root certificate")
    _check_issued_by(cert, cert, "GPU root certificate")
    _check_ca(cert, "GPU root certificate", ca_below=0)
    return GpuRoot(
        der=der,
        subject=cert.subject.rfc4514_string(),
        fingerprint=hashlib.sha256(der).hexdigest(),
        certificate=cert,
    )


def _p384_key(cert: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise GpuChainError(f"{what} key is not ECDSA P-384")
    return key


def _check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    if cert.issuer != issuer.subject:
        raise GpuChainError(f"{what} is not issued by {issuer.subject.rfc4514_string()}")
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise GpuChainError(f"{what} signature does not verify under its issuer") from None


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType]:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        raise GpuChainError(f"certificate lacks extension {oid.dotted_string}") from None


def _check_critical(cert: x509.Certificate, what: str) -> None:
    for e in cert.extensions:
        if e.critical and e.oid.dotted_string not in _UNDERSTOOD:
            raise GpuChainError(f"{what} has unknown critical extension {e.oid.dotted_string}")


def _check_ca(cert: x509.Certificate, what: str, *, ca_below: int) -> None:
    """A CA with ``ca_below`` CA certificates under it (not counting the leaf)."""
    _check_critical(cert, what)
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS).value
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise GpuChainError(f"{what} is not a CA (BasicConstraints cA false or missing)")
    if bc.path_length is not None and bc.path_length < ca_below:
        raise GpuChainError(
            f"{what} allows {bc.path_length} CA certificates below it, the chain has {ca_below}"
        )
    ku = _ext(cert, ExtensionOID.KEY_USAGE).value
    if not isinstance(ku, x509.KeyUsage) or not ku.key_cert_sign:
        raise GpuChainError(f"{what} lacks KeyUsage keyCertSign")


def _check_leaf(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    _check_critical(cert, "attestation certificate")
    try:
        bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except x509.ExtensionNotFound:
        bc = None
    if isinstance(bc, x509.BasicConstraints) and bc.ca:
        raise GpuChainError("attestation certificate is a CA")
    ku = _ext(cert, ExtensionOID.KEY_USAGE).value
    if not isinstance(ku, x509.KeyUsage) or not ku.digital_signature:
        raise GpuChainError("attestation certificate lacks KeyUsage digitalSignature")
    return _p384_key(cert, "attestation certificate")


def _check_time(certs: Sequence[tuple[str, x509.Certificate]], at: datetime) -> None:
    for what, cert in certs:
        if at < cert.not_valid_before_utc:
            raise GpuExpiredError(f"{what} is not valid before {cert.not_valid_before_utc}")
        if at > cert.not_valid_after_utc:
            raise GpuExpiredError(f"{what} expired at {cert.not_valid_after_utc}")


def _verify_chain(
    chain: Sequence[bytes], root: GpuRoot, at: datetime
) -> tuple[x509.Certificate, x509.Certificate]:
    """Return (leaf, device identity certificate) once the chain reaches ``root``."""
    if not 2 <= len(chain) <= MAX_CHAIN_LENGTH:
        raise GpuEvidenceFormatError(
            f"certificate chain has {len(chain)} certificates, want 2 to {MAX_CHAIN_LENGTH}"
        )
    certs = [_parse_der(der, f"certificate {i}") for i, der in enumerate(chain)]
    # NVML's chain ends with the root itself. Accept it only if it is exactly the configured
    # root; a chain that stops below the root is completed with the configured one.
    last = certs[-1]
    if last.issuer == last.subject:
        if chain[-1] != root.der:
            raise GpuWrongRootError(
                f"chain ends at {last.subject.rfc4514_string()}, "
                f"not the configured root {root.subject}"
            )
        certs = certs[:-1]
    elif last.issuer != root.certificate.subject:
        raise GpuWrongRootError(
            f"chain top is issued by {last.issuer.rfc4514_string()}, "
            f"not the configured root {root.subject}"
        )
    if len(certs) < 2:
        raise GpuChainError("chain has no device identity certificate under the root")

    # Walk down from the root: each certificate is checked under an already-trusted issuer.
    issuer = root.certificate
    for depth in range(len(certs) - 1, -1, -1):
        cert = certs[depth]
        what = "attestation certificate" if depth == 0 else f"CA certificate {depth}"
        _check_issued_by(cert, issuer, what)
        if depth:
            _check_ca(cert, what, ca_below=depth - 1)
        issuer = cert
    _check_ca(root.certificate, "GPU root certificate", ca_below=len(certs) - 1)
    _check_time(
        [("GPU root certificate", root.certificate)]
        + [(f"certificate {i}", c) for i, c in enumerate(certs)],
        at,
    )
    return certs[0], certs[1]


def _verify_signature(report: AttestationReport, leaf_key: ec.EllipticCurvePublicKey) -> None:
    sig = report.response.signature
    r, s = int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big")
    try:
        leaf_key.verify(encode_dss_signature(r, s), report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise GpuSignatureError(
            "SPDM measurement signature does not verify under the attestation key"
        ) from None


def _leaf_fwid(leaf: x509.Certificate) -> bytes | None:
    for e in leaf.extensions:
        if e.oid.dotted_string in _DICE_TCB_INFO_OIDS and isinstance(
            e.value, x509.UnrecognizedExtension
        ):
            return e.value.value
    return None


def _spki_sha256(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if len(attrs) == 1 else None


def _opaque(fields: tuple[OpaqueField, ...], field_type: int) -> bytes | None:
    return next((f.value for f in fields if f.field_type == field_type), None)


def _driver_version(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    text = raw[:-1] if raw.endswith(b"\x00") else raw
    try:
        return text.decode("ascii")
    except UnicodeDecodeError:
        raise GpuEvidenceFormatError("driver version opaque field is not ASCII") from None


def verify_gpu_evidence(
    report: bytes,
    cert_chain: Sequence[bytes],
    *,
    root: GpuRoot,
    expected_nonce: bytes,
    at: datetime,
) -> GpuEvidenceClaims:
    """Verify NVIDIA GPU evidence and return its claims.

    ``report`` is the attestation report, ``cert_chain`` the DER certificates leaf first (the
    configured root may or may not end it; see :func:`split_pem_chain`), ``expected_nonce`` the
    32 bytes the verifier asked the GPU to sign over, ``at`` an aware datetime.
    """
    if not isinstance(expected_nonce, bytes) or len(expected_nonce) != NONCE_SIZE:
        raise FormatError(f"expected nonce must be {NONCE_SIZE} bytes")
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise FormatError("at must be a timezone-aware datetime")
    parsed = parse_attestation_report(report)
    leaf, device = _verify_chain(cert_chain, root, at)
    leaf_key = _check_leaf(leaf)
    if not hmac.compare_digest(parsed.request.nonce, expected_nonce):
        raise GpuNonceError("the report answers another nonce than the one expected")
    _verify_signature(parsed, leaf_key)

    fwid = _opaque(parsed.opaque_fields, OPAQUE_FWID)
    if fwid:
        cert_fwid = _leaf_fwid(leaf)
        # The TcbInfo's FWID digest is its last field (NVIDIA compares the trailing 48 bytes).
        if cert_fwid is None or not cert_fwid.endswith(fwid):
            raise GpuChainError(
                "the firmware id in the report differs from the attestation certificate's"
            )
    vbios = _opaque(parsed.opaque_fields, OPAQUE_VBIOS_VERSION)
    return GpuEvidenceClaims(
        hardware_id=_spki_sha256(device),
        device_serial=_name_attr(device.subject, NameOID.SERIAL_NUMBER),
        hardware_model=_name_attr(device.subject, NameOID.COMMON_NAME),
        ueid=str(leaf.serial_number),
        attestation_key_fingerprint=_spki_sha256(leaf),
        root_fingerprint=root.fingerprint,
        nonce=parsed.request.nonce,
        responder_nonce=parsed.response.nonce,
        spdm_version=parsed.request.version,
        measurements=parsed.response.blocks,
        opaque_fields=parsed.opaque_fields,
        driver_version=_driver_version(_opaque(parsed.opaque_fields, OPAQUE_DRIVER_VERSION)),
        vbios_version=None if vbios is None else format_vbios_version(vbios),
        fwid=fwid or None,
    )
