"""Vendor roots and chip endorsement certificates."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attestation.certs import (
    create_vendor_root,
    issue_chip_certificate,
    load_vendor_root,
    verify_chip_certificate,
    verify_chip_certificates,
)
from attestation.errors import CertificateError, FormatError, KeyMismatchError
from attestation.keys import PrivateKey

from .conftest import T0, T_END

AT = datetime(2027, 6, 1, tzinfo=UTC)


def _der_sha256(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _issue(root_pem: bytes, vendor_key: PrivateKey, chip_key: PrivateKey, **kw: object) -> bytes:
    args: dict[str, object] = {
        "root_pem": root_pem,
        "root_key": vendor_key,
        "chip_id": "NV-H100-0002",
        "model": "H100-SXM5-80GB",
        "chip_key": chip_key.public_key,
        "not_before": T0,
        "not_after": T0 + timedelta(days=365),
    }
    args.update(kw)
    return issue_chip_certificate(**args)  # type: ignore[arg-type]


def _raw_cert(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: object,
    signer: object,
    ca: bool | None,
    digital_signature: bool = True,
) -> bytes:
    """A certificate built without our helpers, to present shapes they would refuse to make."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0)
        .not_valid_after(T_END)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=digital_signature,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=bool(ca),
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        True,
    )
    algo = None if isinstance(signer, PrivateKey) else hashes.SHA256()
    key = signer.to_cryptography() if isinstance(signer, PrivateKey) else signer
    return builder.sign(key, algo).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


def _chip_name(cn: str | None = "NV-H100-0009", org: str = "Nvidia") -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.TITLE, "H100"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ]
    if cn is not None:
        attrs.insert(0, x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _root_subject(root_pem: bytes) -> x509.Name:
    return x509.load_pem_x509_certificate(root_pem).subject


def test_vendor_root(root_pem: bytes, vendor_key: PrivateKey) -> None:
    root = load_vendor_root(root_pem)
    assert root.name == "Nvidia"
    assert root.public_key == vendor_key.public_key
    assert root.fingerprint == _der_sha256(root_pem)
    assert (root.not_before, root.not_after) == (T0, T_END)
    cert = x509.load_pem_x509_certificate(root_pem)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_chip_certificate_layout_and_verification(
    chip_cert_pem: bytes, root_pem: bytes, chip_key: PrivateKey
) -> None:
    e = verify_chip_certificate(chip_cert_pem, root_pem, at=AT)
    assert e.chip_id == "NV-H100-0001"
    assert e.model == "H100-SXM5-80GB"
    assert e.vendor == "Nvidia"
    assert e.public_key == chip_key.public_key
    assert e.not_before == T0
    assert e.fingerprint == _der_sha256(chip_cert_pem)
    # PROTOCOL.md 1.2 layout.
    cert = x509.load_pem_x509_certificate(chip_cert_pem)
    subj = cert.subject
    assert subj.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "NV-H100-0001"
    assert subj.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "NV-H100-0001"
    assert subj.get_attributes_for_oid(NameOID.TITLE)[0].value == "H100-SXM5-80GB"
    assert subj.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Nvidia"
    assert cert.issuer == _root_subject(root_pem)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign


def test_serial_number_is_used(
    root_pem: bytes, vendor_key: PrivateKey, chip_key: PrivateKey
) -> None:
    pem = _issue(root_pem, vendor_key, chip_key, serial_number=12345)
    assert x509.load_pem_x509_certificate(pem).serial_number == 12345


@pytest.mark.parametrize(
    "at",
    [
        T0 - timedelta(seconds=1),  # not yet valid
        T0 + timedelta(days=365, seconds=1),  # expired
    ],
)
def test_validity_period(
    root_pem: bytes, vendor_key: PrivateKey, chip_key: PrivateKey, at: datetime
) -> None:
    pem = _issue(root_pem, vendor_key, chip_key)
    verify_chip_certificate(pem, root_pem, at=T0)
    verify_chip_certificate(pem, root_pem, at=T0 + timedelta(days=365))
    with pytest.raises(CertificateError):
        verify_chip_certificate(pem, root_pem, at=at)


def test_expired_root(vendor_key: PrivateKey, chip_key: PrivateKey) -> None:
    short_root = create_vendor_root(
        "Nvidia", vendor_key, not_before=T0, not_after=T0 + timedelta(days=10)
    )
    pem = _issue(short_root, vendor_key, chip_key)
    verify_chip_certificate(pem, short_root, at=T0 + timedelta(days=1))
    with pytest.raises(CertificateError, match="vendor root expired"):
        verify_chip_certificate(pem, short_root, at=T0 + timedelta(days=11))


def test_signed_by_another_root(chip_cert_pem: bytes, other_key: PrivateKey) -> None:
    # Same vendor name, so even the issuer name matches: only the signature tells them apart.
    impostor = create_vendor_root("Nvidia", other_key, not_before=T0, not_after=T_END)
    with pytest.raises(CertificateError):
        verify_chip_certificate(chip_cert_pem, impostor, at=AT)
    other_vendor = create_vendor_root("AMD", other_key, not_before=T0, not_after=T_END)
    with pytest.raises(CertificateError):
        verify_chip_certificate(chip_cert_pem, other_vendor, at=AT)


def test_ca_cert_as_chip_cert(
    root_pem: bytes, vendor_key: PrivateKey, chip_key: PrivateKey
) -> None:
    with pytest.raises(CertificateError, match="CA"):
        verify_chip_certificate(root_pem, root_pem, at=AT)
    # A CA certificate issued by the root, with a valid chip id as CN.
    pem = _raw_cert(
        subject=_chip_name(),
        issuer=_root_subject(root_pem),
        public_key=chip_key.public_key.to_cryptography(),
        signer=vendor_key,
        ca=True,
    )
    with pytest.raises(CertificateError, match="CA"):
        verify_chip_certificate(pem, root_pem, at=AT)


def test_raw_chip_cert_accepted(
    root_pem: bytes, vendor_key: PrivateKey, chip_key: PrivateKey
) -> None:
    # Sanity check for the helper below: a well-formed hand-built certificate verifies.
    pem = _raw_cert(
        subject=_chip_name(),
        issuer=_root_subject(root_pem),
        public_key=chip_key.public_key.to_cryptography(),
        signer=vendor_key,
        ca=False,
    )
    assert verify_chip_certificate(pem, root_pem, at=AT).chip_id == "NV-H100-0009"


BAD_SHAPES: dict[str, tuple[x509.Name, bool | None, bool]] = {
    "missing CN": (_chip_name(cn=None), False, True),
    "CN not a chip id": (_chip_name(cn="bad chip id"), False, True),
    "CN leading dash": (_chip_name(cn="-leading-dash"), False, True),
    "vendor name mismatch": (_chip_name(org="AMD"), False, True),
    "no BasicConstraints": (_chip_name(), None, True),
    "no digital_signature": (_chip_name(), False, False),
    "no model": (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NV-1")]), False, True),
}


@pytest.mark.parametrize("shape", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_bad_chip_certificate_shapes(
    root_pem: bytes,
    vendor_key: PrivateKey,
    chip_key: PrivateKey,
    shape: tuple[x509.Name, bool | None, bool],
) -> None:
    subject, ca, digital_signature = shape
    pem = _raw_cert(
        subject=subject,
        issuer=_root_subject(root_pem),
        public_key=chip_key.public_key.to_cryptography(),
        signer=vendor_key,
        ca=ca,
        digital_signature=digital_signature,
    )
    with pytest.raises(CertificateError):
        verify_chip_certificate(pem, root_pem, at=AT)


def test_non_ed25519_chip_key(root_pem: bytes, vendor_key: PrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = _raw_cert(
        subject=_chip_name(),
        issuer=_root_subject(root_pem),
        public_key=ec_key.public_key(),
        signer=vendor_key,
        ca=False,
    )
    with pytest.raises(CertificateError, match="Ed25519"):
        verify_chip_certificate(pem, root_pem, at=AT)


def test_bad_roots(vendor_key: PrivateKey, other_key: PrivateKey) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Nvidia")])
    not_ca = _raw_cert(
        subject=name,
        issuer=name,
        public_key=vendor_key.public_key.to_cryptography(),
        signer=vendor_key,
        ca=False,
    )
    forged = _raw_cert(  # claims to be self-signed, but another key signed it
        subject=name,
        issuer=name,
        public_key=vendor_key.public_key.to_cryptography(),
        signer=other_key,
        ca=True,
    )
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_root = _raw_cert(
        subject=name, issuer=name, public_key=ec_key.public_key(), signer=ec_key, ca=True
    )
    no_org_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")])
    no_org = _raw_cert(
        subject=no_org_name,
        issuer=no_org_name,
        public_key=vendor_key.public_key.to_cryptography(),
        signer=vendor_key,
        ca=True,
    )
    for pem in (
        not_ca,
        forged,
        ec_root,
        no_org,
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    ):
        with pytest.raises(CertificateError):
            load_vendor_root(pem)


def test_garbage_chip_cert(root_pem: bytes) -> None:
    with pytest.raises(CertificateError):
        verify_chip_certificate(b"not a cert", root_pem, at=AT)


def test_issue_checks_inputs(
    root_pem: bytes, vendor_key: PrivateKey, chip_key: PrivateKey, other_key: PrivateKey
) -> None:
    with pytest.raises(KeyMismatchError):
        _issue(root_pem, other_key, chip_key)
    with pytest.raises(FormatError):
        _issue(root_pem, vendor_key, chip_key, chip_id="no spaces allowed")
    with pytest.raises(FormatError):
        _issue(root_pem, vendor_key, chip_key, model="")
    with pytest.raises(FormatError):
        _issue(root_pem, vendor_key, chip_key, not_after=T0)
    with pytest.raises(FormatError):
        _issue(root_pem, vendor_key, chip_key, not_before=datetime(2026, 1, 1))
    with pytest.raises(CertificateError):
        _issue(b"junk", vendor_key, chip_key)
    with pytest.raises(FormatError):
        create_vendor_root("", vendor_key, not_before=T0, not_after=T_END)


def test_naive_at_is_rejected(chip_cert_pem: bytes, root_pem: bytes) -> None:
    with pytest.raises(FormatError):
        verify_chip_certificate(chip_cert_pem, root_pem, at=datetime(2027, 1, 1))


def test_many_certificates_of_one_root_give_each_its_own_verdict(
    root_pem: bytes, vendor_key: PrivateKey, chip_key: PrivateKey, other_key: PrivateKey
) -> None:
    other_root = create_vendor_root("Nvidia", other_key, not_before=T0, not_after=T_END)
    good = _issue(root_pem, vendor_key, chip_key)
    foreign = _issue(other_root, other_key, chip_key)
    expired = _issue(root_pem, vendor_key, chip_key, not_after=T0 + timedelta(days=1))
    pems = [good, b"garbage", foreign, expired, good]
    at = T0 + timedelta(days=10)
    results = verify_chip_certificates(pems, root_pem, at=at)
    for pem, result in zip(pems, results, strict=True):
        try:
            expected: object = verify_chip_certificate(pem, root_pem, at=at)
        except CertificateError as exc:
            assert isinstance(result, CertificateError) and str(result) == str(exc)
        else:
            assert result == expected
    assert [isinstance(r, CertificateError) for r in results] == [False, True, True, True, False]
    with pytest.raises(CertificateError):
        verify_chip_certificates([good], b"not a root", at=at)
