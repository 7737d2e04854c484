"""Vendor roots and chip endorsement certificates (PROTOCOL.md section 1.2).

A vendor root is a self-signed Ed25519 CA; each chip key is endorsed by a leaf certificate
signed directly by that root. There are no intermediates, so chain building is one signature
check and the trust decision stays in this small module rather than in a generic path builder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from attestation.errors import CertificateError, FormatError, KeyMismatchError
from attestation.identity import validate_chip_id
from attestation.keys import PrivateKey, PublicKey

__all__ = [
    "ChipEndorsement",
    "VendorRoot",
    "create_vendor_root",
    "issue_chip_certificate",
    "load_vendor_root",
    "verify_chip_certificate",
    "verify_chip_certificates",
]


@dataclass(frozen=True)
class VendorRoot:
    """A parsed, self-verified vendor root certificate."""

    name: str
    public_key: PublicKey
    fingerprint: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class ChipEndorsement:
    """What a verified chip certificate asserts: this key belongs to this chip of this vendor."""

    chip_id: str
    model: str
    vendor: str
    public_key: PublicKey
    not_before: datetime
    not_after: datetime
    fingerprint: str


def _require_aware(dt: datetime, what: str) -> None:
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise FormatError(f"{what} must be a timezone-aware datetime")


def _check_validity(not_before: datetime, not_after: datetime) -> None:
    _require_aware(not_before, "not_before")
    _require_aware(not_after, "not_after")
    if not_after <= not_before:
        raise FormatError("not_after must be later than not_before")


def _single_attr(name: x509.Name, oid: x509.ObjectIdentifier, what: str) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    if not attrs:
        return None
    if len(attrs) > 1:
        raise CertificateError(f"subject has {len(attrs)} {what} attributes, want one")
    value = attrs[0].value
    if not isinstance(value, str) or not value:
        raise CertificateError(f"subject {what} must be a non-empty string")
    return value


def _load(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as e:
        raise CertificateError(f"{what} is not a PEM X.509 certificate: {e}") from None


def _ed25519_key(cert: x509.Certificate, what: str) -> PublicKey:
    try:
        key = cert.public_key()
    except (ValueError, TypeError) as e:  # unsupported or malformed SubjectPublicKeyInfo
        raise CertificateError(f"{what} public key cannot be read: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CertificateError(f"{what} key is {type(key).__name__}, not Ed25519")
    return PublicKey(key.public_bytes_raw())


def _check_signed_by(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateError(f"{what} is not signed by the vendor root") from None


def _extension(
    cert: x509.Certificate, ext_type: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_class(ext_type)
    except x509.ExtensionNotFound:
        return None
    except ValueError as e:  # duplicate or malformed extensions
        raise CertificateError(f"malformed certificate extensions: {e}") from None


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def create_vendor_root(
    vendor_name: str, key: PrivateKey, *, not_before: datetime, not_after: datetime
) -> bytes:
    """Create a self-signed Ed25519 vendor root CA certificate (PEM) for ``vendor_name``."""
    if not isinstance(vendor_name, str) or not vendor_name.strip():
        raise FormatError("vendor name must be a non-empty string")
    _check_validity(not_before, not_after)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{vendor_name} chip root"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, vendor_name),
        ]
    )
    spki = key.public_key.to_cryptography()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(spki)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(spki), critical=False)
        .sign(key.to_cryptography(), None)  # Ed25519 takes no separate digest
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _load_root(pem: bytes) -> tuple[x509.Certificate, VendorRoot]:
    cert = _load(pem, "vendor root")
    public_key = _ed25519_key(cert, "vendor root")
    if cert.issuer != cert.subject:
        raise CertificateError("vendor root is not self-issued")
    _check_signed_by(cert, cert, "vendor root")
    bc = _extension(cert, x509.BasicConstraints)
    if bc is None or not isinstance(bc.value, x509.BasicConstraints) or not bc.value.ca:
        raise CertificateError("vendor root is not a CA (BasicConstraints ca=True missing)")
    ku = _extension(cert, x509.KeyUsage)
    if ku is None or not isinstance(ku.value, x509.KeyUsage) or not ku.value.key_cert_sign:
        raise CertificateError("vendor root lacks KeyUsage key_cert_sign")
    name = _single_attr(cert.subject, NameOID.ORGANIZATION_NAME, "organizationName")
    if name is None:
        raise CertificateError("vendor root subject has no organizationName")
    root = VendorRoot(
        name=name,
        public_key=public_key,
        fingerprint=_fingerprint(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
    return cert, root


def load_vendor_root(pem: bytes) -> VendorRoot:
    """Parse and self-verify a vendor root; :class:`CertificateError` unless it is a valid root.

    Validity dates are reported, not checked: there is no clock here. Callers check them at
    the time that matters (see :func:`verify_chip_certificate`).
    """
    return _load_root(pem)[1]


def issue_chip_certificate(
    *,
    root_pem: bytes,
    root_key: PrivateKey,
    chip_id: str,
    model: str,
    chip_key: PublicKey,
    not_before: datetime,
    not_after: datetime,
    serial_number: int | None = None,
) -> bytes:
    """Issue a chip endorsement certificate (PEM) for ``chip_key``, signed by the vendor root."""
    root_cert, root = _load_root(root_pem)
    if root_key.public_key != root.public_key:
        raise KeyMismatchError("root_key does not match the vendor root certificate")
    validate_chip_id(chip_id)
    if not isinstance(model, str) or not model.strip():
        raise FormatError("chip model must be a non-empty string")
    _check_validity(not_before, not_after)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, chip_id),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, chip_id),
            x509.NameAttribute(NameOID.TITLE, model),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, root.name),
        ]
    )
    spki = chip_key.to_cryptography()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_cert.subject)
        .public_key(spki)
        .serial_number(x509.random_serial_number() if serial_number is None else serial_number)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(spki), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.public_key.to_cryptography()),
            critical=False,
        )
        .sign(root_key.to_cryptography(), None)
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def verify_chip_certificate(cert_pem: bytes, root_pem: bytes, *, at: datetime) -> ChipEndorsement:
    """Verify a chip certificate against a vendor root at time ``at``; return what it endorses.

    Raises :class:`CertificateError` for a bad chain, a certificate (chip or root) outside its
    validity period at ``at``, a non-Ed25519 key, a CA certificate presented as a chip, or a
    missing or invalid chip id.
    """
    _require_aware(at, "at")
    root_cert, root = _load_root(root_pem)
    return _verify_chip(cert_pem, root_cert, root, at)


def verify_chip_certificates(
    cert_pems: Sequence[bytes], root_pem: bytes, *, at: datetime
) -> list[ChipEndorsement | CertificateError]:
    """:func:`verify_chip_certificate` for many certificates of one root, item by item.

    The root is parsed and self-verified once (a bad root raises :class:`CertificateError`);
    each item's result is its endorsement or the :class:`CertificateError` it would raise.
    """
    _require_aware(at, "at")
    root_cert, root = _load_root(root_pem)
    results: list[ChipEndorsement | CertificateError] = []
    for cert_pem in cert_pems:
        try:
            results.append(_verify_chip(cert_pem, root_cert, root, at))
        except CertificateError as exc:
            results.append(exc)
    return results


def _verify_chip(
    cert_pem: bytes, root_cert: x509.Certificate, root: VendorRoot, at: datetime
) -> ChipEndorsement:
    cert = _load(cert_pem, "chip certificate")
    public_key = _ed25519_key(cert, "chip certificate")
    if cert.issuer != root_cert.subject:
        raise CertificateError("chip certificate issuer is not the vendor root subject")
    _check_signed_by(cert, root_cert, "chip certificate")

    bc = _extension(cert, x509.BasicConstraints)
    if bc is None or not isinstance(bc.value, x509.BasicConstraints):
        raise CertificateError("chip certificate lacks BasicConstraints")
    if bc.value.ca:
        raise CertificateError("a CA certificate cannot be a chip certificate")
    ku = _extension(cert, x509.KeyUsage)
    if ku is None or not isinstance(ku.value, x509.KeyUsage) or not ku.value.digital_signature:
        raise CertificateError("chip certificate lacks KeyUsage digital_signature")
    if ku.value.key_cert_sign:
        raise CertificateError("chip certificate must not have KeyUsage key_cert_sign")

    for what, nb, na in (
        ("vendor root", root.not_before, root.not_after),
        ("chip certificate", cert.not_valid_before_utc, cert.not_valid_after_utc),
    ):
        if at < nb:
            raise CertificateError(f"{what} is not yet valid at {at.isoformat()}")
        if at > na:
            raise CertificateError(f"{what} expired at {na.isoformat()}")

    chip_id = _single_attr(cert.subject, NameOID.COMMON_NAME, "commonName")
    if chip_id is None:
        raise CertificateError("chip certificate subject has no commonName")
    try:
        validate_chip_id(chip_id)
    except FormatError as e:
        raise CertificateError(f"chip certificate commonName: {e}") from None
    serial = _single_attr(cert.subject, NameOID.SERIAL_NUMBER, "serialNumber")
    if serial is not None and serial != chip_id:
        raise CertificateError("chip certificate serialNumber differs from commonName")
    model = _single_attr(cert.subject, NameOID.TITLE, "title")
    if model is None:
        raise CertificateError("chip certificate subject has no title (chip model)")
    org = _single_attr(cert.subject, NameOID.ORGANIZATION_NAME, "organizationName")
    if org is not None and org != root.name:
        raise CertificateError(f"chip certificate organizationName {org!r} is not {root.name!r}")

    return ChipEndorsement(
        chip_id=chip_id,
        model=model,
        vendor=root.name,
        public_key=public_key,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=_fingerprint(cert),
    )
