"""NVIDIA GPU device evidence: NVIDIA's genuine Hopper sample, mutations of it, and NVIDIA's
own verifier's verdict on each case."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attestation import errors
from attestation.errors import (
    FormatError,
    GpuChainError,
    GpuEvidenceError,
    GpuEvidenceFormatError,
    GpuExpiredError,
    GpuNonceError,
    GpuSignatureError,
    GpuWrongRootError,
    SignatureError,
)
from attestation.gpu import (
    ENROLLMENT_BINDING,
    REATTESTATION_BINDING,
    GpuRoot,
    bind_spdm_nonce,
    load_gpu_root,
    split_pem_chain,
    verify_gpu_evidence,
)
from attestation.spdm import format_vbios_version, parse_attestation_report

from .nvidia_reference import Case, HopperSample, load_hopper_sample, nvidia_verdicts

AT = datetime(2026, 12, 1, tzinfo=UTC)
OTHER_NONCE = bytes(range(32))
# Offsets of the report: request 0..37 (nonce 4..36), response header 37..45, measurement
# record 45..3565, responder nonce, opaque length and data, signature (last 96 bytes).
REPORT_LEN = 4117
FLIP_POSITIONS = sorted(
    {
        *range(0, 45),
        *range(45, REPORT_LEN, 53),
        *range(3560, 3610),
        *range(REPORT_LEN - 100, REPORT_LEN),
    }
)


@pytest.fixture(scope="module")
def hopper() -> HopperSample:
    return load_hopper_sample()


@pytest.fixture(scope="module")
def nvidia_root(hopper: HopperSample) -> GpuRoot:
    return load_gpu_root(hopper.root_pem)


def _other_root_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NVIDIA"),
            x509.NameAttribute(NameOID.COMMON_NAME, "NVIDIA Device Identity CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2021, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2099, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA384())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem(chain: tuple[bytes, ...] | list[bytes]) -> bytes:
    """PEM-wrap DER bytes as they are, even when they no longer parse."""
    out = b""
    for der in chain:
        b64 = base64.b64encode(der)
        lines = b"\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
        out += b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"
    return out


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]


# -- the genuine sample ------------------------------------------------------------------------


def test_genuine_hopper_sample_verifies_with_its_own_nonce(
    hopper: HopperSample, nvidia_root: GpuRoot
) -> None:
    claims = verify_gpu_evidence(
        hopper.report, hopper.chain, root=nvidia_root, expected_nonce=hopper.nonce, at=AT
    )
    assert claims.nonce == hopper.nonce
    assert claims.nonce.hex() == "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
    assert claims.spdm_version == 0x11
    assert claims.hardware_model == "GH100 A01 GSP BROM"
    assert claims.device_serial == "41431D480FE5E87274"
    device = x509.load_der_x509_certificate(hopper.chain[1])
    spki = device.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert claims.hardware_id == hashlib.sha256(spki).hexdigest()
    leaf = x509.load_der_x509_certificate(hopper.chain[0])
    assert claims.ueid == str(leaf.serial_number)  # what NVIDIA's cc_admin reports as ueid
    assert claims.driver_version == "550.90.07"
    assert claims.vbios_version == "96.00.9f.00.01"
    assert claims.fwid is not None and len(claims.fwid) == 48
    assert claims.root_fingerprint == hashlib.sha256(hopper.chain[-1]).hexdigest()
    assert [b.index for b in claims.measurements] == list(range(1, 65))
    assert all(len(b.value) == 48 for b in claims.measurements if b.value)
    assert claims.responder_nonce != claims.nonce


def test_chain_without_its_root_is_completed_by_the_configured_root(
    hopper: HopperSample, nvidia_root: GpuRoot
) -> None:
    claims = verify_gpu_evidence(
        hopper.report, hopper.chain[:-1], root=nvidia_root, expected_nonce=hopper.nonce, at=AT
    )
    assert claims.device_serial == "41431D480FE5E87274"


def test_root_loads_from_pem_and_der(hopper: HopperSample) -> None:
    from_pem = load_gpu_root(hopper.root_pem)
    from_der = load_gpu_root(from_pem.der)
    assert from_pem.fingerprint == from_der.fingerprint
    assert from_pem.subject == "O=NVIDIA,CN=NVIDIA Device Identity CA"


# -- each failure its own error ----------------------------------------------------------------


def test_error_codes_are_distinct_and_in_one_tree() -> None:
    classes = [
        GpuEvidenceFormatError,
        GpuNonceError,
        GpuSignatureError,
        GpuChainError,
        GpuWrongRootError,
        GpuExpiredError,
    ]
    assert len({c.code for c in classes}) == len(classes)
    assert all(issubclass(c, GpuEvidenceError) for c in classes)
    assert issubclass(GpuEvidenceError, errors.AttestationError)
    assert issubclass(GpuSignatureError, SignatureError)
    assert issubclass(GpuEvidenceFormatError, FormatError)


def test_another_expected_nonce_is_a_nonce_error(
    hopper: HopperSample, nvidia_root: GpuRoot
) -> None:
    with pytest.raises(GpuNonceError):
        verify_gpu_evidence(
            hopper.report, hopper.chain, root=nvidia_root, expected_nonce=OTHER_NONCE, at=AT
        )


@pytest.mark.parametrize("pos", FLIP_POSITIONS)
def test_any_flipped_report_byte_is_rejected(
    hopper: HopperSample, nvidia_root: GpuRoot, pos: int
) -> None:
    flipped = _flip(hopper.report, pos)
    with pytest.raises(GpuEvidenceError) as info:
        # The verifier expects the nonce it sent, which is the unflipped one.
        verify_gpu_evidence(
            flipped, hopper.chain, root=nvidia_root, expected_nonce=hopper.nonce, at=AT
        )
    if 4 <= pos < 36:
        assert isinstance(info.value, GpuNonceError)
    elif pos >= REPORT_LEN - 96:
        assert isinstance(info.value, GpuSignatureError)
    else:
        assert isinstance(info.value, GpuSignatureError | GpuEvidenceFormatError)


def test_a_signature_forged_for_the_flipped_nonce_still_fails(
    hopper: HopperSample, nvidia_root: GpuRoot
) -> None:
    # Asking for the flipped nonce gets past the nonce check: the signature must catch it.
    flipped = _flip(hopper.report, 10)
    with pytest.raises(GpuSignatureError):
        verify_gpu_evidence(
            flipped, hopper.chain, root=nvidia_root, expected_nonce=flipped[4:36], at=AT
        )


@pytest.mark.parametrize("cert_index", [0, 1, 2, 3])
@pytest.mark.parametrize("where", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_flipped_chain_byte_is_rejected(
    hopper: HopperSample, nvidia_root: GpuRoot, cert_index: int, where: float
) -> None:
    chain = list(hopper.chain)
    chain[cert_index] = _flip(chain[cert_index], int(len(chain[cert_index]) * where))
    with pytest.raises(GpuEvidenceError):
        verify_gpu_evidence(
            hopper.report, chain, root=nvidia_root, expected_nonce=hopper.nonce, at=AT
        )


@pytest.mark.parametrize("drop", [1, 2, 3])
def test_truncated_chain_is_a_chain_error(
    hopper: HopperSample, nvidia_root: GpuRoot, drop: int
) -> None:
    chain = hopper.chain[:drop] + hopper.chain[drop + 1 :]
    with pytest.raises(GpuChainError) as info:
        verify_gpu_evidence(
            hopper.report, chain, root=nvidia_root, expected_nonce=hopper.nonce, at=AT
        )
    assert not isinstance(info.value, GpuWrongRootError | GpuExpiredError)


def test_chain_of_only_the_leaf_and_root_is_malformed_or_broken(
    hopper: HopperSample, nvidia_root: GpuRoot
) -> None:
    with pytest.raises(GpuEvidenceFormatError):
        verify_gpu_evidence(
            hopper.report, hopper.chain[:1], root=nvidia_root, expected_nonce=hopper.nonce, at=AT
        )
    with pytest.raises(GpuChainError):
        verify_gpu_evidence(
            hopper.report,
            (hopper.chain[0], hopper.chain[-1]),
            root=nvidia_root,
            expected_nonce=hopper.nonce,
            at=AT,
        )


def test_another_root_is_a_wrong_root_error(hopper: HopperSample) -> None:
    other = load_gpu_root(_other_root_pem())
    for chain in (hopper.chain, hopper.chain[:-1]):
        with pytest.raises(GpuWrongRootError):
            verify_gpu_evidence(
                hopper.report, chain, root=other, expected_nonce=hopper.nonce, at=AT
            )


def test_before_the_certificates_are_valid_is_an_expiry_error(
    hopper: HopperSample, nvidia_root: GpuRoot
) -> None:
    # The leaf is valid from 2020-10-17, the provisioner ICA from 2022-03-01.
    for at in (datetime(2020, 1, 1, tzinfo=UTC), datetime(2022, 2, 28, tzinfo=UTC)):
        with pytest.raises(GpuExpiredError):
            verify_gpu_evidence(
                hopper.report, hopper.chain, root=nvidia_root, expected_nonce=hopper.nonce, at=at
            )
    # Not after 9999-12-31 23:59:59: the last representable instant is still valid.
    end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    verify_gpu_evidence(
        hopper.report, hopper.chain, root=nvidia_root, expected_nonce=hopper.nonce, at=end
    )
    with pytest.raises(GpuExpiredError):
        verify_gpu_evidence(
            hopper.report,
            hopper.chain,
            root=nvidia_root,
            expected_nonce=hopper.nonce,
            at=end + timedelta(microseconds=1),
        )


@pytest.mark.parametrize("cut", [0, 1, 36, 37, 44, 45, 1000, 3565, REPORT_LEN - 97, REPORT_LEN - 1])
def test_truncated_report_is_malformed(
    hopper: HopperSample, nvidia_root: GpuRoot, cut: int
) -> None:
    with pytest.raises(GpuEvidenceFormatError):
        verify_gpu_evidence(
            hopper.report[:cut], hopper.chain, root=nvidia_root, expected_nonce=hopper.nonce, at=AT
        )


def test_trailing_bytes_are_malformed(hopper: HopperSample, nvidia_root: GpuRoot) -> None:
    with pytest.raises(GpuEvidenceFormatError):
        verify_gpu_evidence(
            hopper.report + b"\x00",
            hopper.chain,
            root=nvidia_root,
            expected_nonce=hopper.nonce,
            at=AT,
        )


def test_bad_arguments_are_format_errors(hopper: HopperSample, nvidia_root: GpuRoot) -> None:
    with pytest.raises(FormatError):
        verify_gpu_evidence(
            hopper.report, hopper.chain, root=nvidia_root, expected_nonce=b"short", at=AT
        )
    with pytest.raises(FormatError):
        verify_gpu_evidence(
            hopper.report,
            hopper.chain,
            root=nvidia_root,
            expected_nonce=hopper.nonce,
            at=datetime(2026, 1, 1),  # naive
        )


def test_pem_chain_with_foreign_text_is_malformed(hopper: HopperSample) -> None:
    assert split_pem_chain(hopper.chain_pem) == hopper.chain
    with pytest.raises(GpuEvidenceFormatError):
        split_pem_chain(hopper.chain_pem + b"junk\n")
    with pytest.raises(GpuEvidenceFormatError):
        split_pem_chain(b"hello\n" + hopper.chain_pem)
    with pytest.raises(GpuEvidenceFormatError):
        split_pem_chain(b"")


def test_report_parse_matches_the_spdm_layout(hopper: HopperSample) -> None:
    parsed = parse_attestation_report(hopper.report)
    assert parsed.request.operation == 0xFF  # all measurements
    assert parsed.request.slot_id == 0
    assert parsed.signed_bytes == hopper.report[:-96]
    assert {f.field_type for f in parsed.opaque_fields} >= {3, 6, 20}
    assert format_vbios_version(bytes.fromhex("009f009601000000")) == "96.00.9f.00.01"


# -- NVIDIA's own verifier agrees --------------------------------------------------------------


def test_nvidia_reference_verifier_agrees_on_every_case(
    hopper: HopperSample, nvidia_root: GpuRoot, tmp_path: Path
) -> None:
    other_root_pem = _other_root_pem()
    cases: list[tuple[str, Case, GpuRoot]] = [
        (
            "genuine",
            Case(hopper.report, hopper.chain_pem, hopper.root_pem, hopper.nonce),
            nvidia_root,
        ),
        (
            "other nonce",
            Case(hopper.report, hopper.chain_pem, hopper.root_pem, OTHER_NONCE),
            nvidia_root,
        ),
        (
            "other root",
            Case(hopper.report, hopper.chain_pem, other_root_pem, hopper.nonce),
            load_gpu_root(other_root_pem),
        ),
    ]
    for drop in (1, 2, 3):
        chain = hopper.chain[:drop] + hopper.chain[drop + 1 :]
        cases.append(
            (
                f"chain without {drop}",
                Case(hopper.report, _pem(chain), hopper.root_pem, hopper.nonce),
                nvidia_root,
            )
        )
    for pos in FLIP_POSITIONS[::3]:
        flipped = _flip(hopper.report, pos)
        cases.append(
            (
                f"report byte {pos}",
                Case(flipped, hopper.chain_pem, hopper.root_pem, hopper.nonce),
                nvidia_root,
            )
        )
    # NVIDIA replaces the chain's last certificate by its configured root without looking at
    # it, so flips are planted in the four certificates below the root (see the next test).
    for idx in range(4):
        for where in (0.2, 0.5, 0.8, 0.95):
            chain = list(hopper.chain)
            chain[idx] = _flip(chain[idx], int(len(chain[idx]) * where))
            cases.append(
                (
                    f"cert {idx} at {where}",
                    Case(hopper.report, _pem(chain), hopper.root_pem, hopper.nonce),
                    nvidia_root,
                )
            )

    theirs = nvidia_verdicts([c for _, c, _ in cases], tmp_path)
    mismatches = []
    for (name, case, root), verdict in zip(cases, theirs, strict=True):
        try:
            verify_gpu_evidence(
                case.report,
                split_pem_chain(case.chain_pem),
                root=root,
                expected_nonce=case.nonce,
                at=AT,
            )
            ours = "accept"
        except GpuEvidenceError as e:
            ours = f"reject: {e.code}"
        if (ours == "accept") != (verdict == "accept"):
            mismatches.append((name, ours, verdict))
    assert not mismatches
    assert theirs[0] == "accept"
    assert sum(v == "accept" for v in theirs) == 1


def test_chain_root_copy_is_checked_where_nvidia_ignores_it(
    hopper: HopperSample, nvidia_root: GpuRoot, tmp_path: Path
) -> None:
    # A documented, deliberate difference: a corrupted copy of the root at the end of the
    # presented chain is refused here; NVIDIA's flow discards that copy unread.
    chain = list(hopper.chain)
    chain[-1] = _flip(chain[-1], len(chain[-1]) - 10)  # inside the root's signature
    (verdict,) = nvidia_verdicts(
        [Case(hopper.report, _pem(chain), hopper.root_pem, hopper.nonce)], tmp_path
    )
    assert verdict == "accept"
    with pytest.raises(GpuWrongRootError):
        verify_gpu_evidence(
            hopper.report, chain, root=nvidia_root, expected_nonce=hopper.nonce, at=AT
        )


def test_nonce_binding_matches_the_protocol_example() -> None:
    # docs/PROTOCOL.md 11.3
    spdm = bind_spdm_nonce(ENROLLMENT_BINDING, b"\x00" * 32, b"\x01" * 32)
    assert spdm.hex() == "ba9746b66d443c1b787bc1885c93258373768e77ee744809e88d2275b5f7007c"
    assert bind_spdm_nonce(REATTESTATION_BINDING, b"\x00" * 32, b"\x01" * 32) != spdm
    with pytest.raises(FormatError):
        bind_spdm_nonce(b"other\x00", b"\x00" * 32, b"\x01" * 32)
    with pytest.raises(FormatError):
        bind_spdm_nonce(ENROLLMENT_BINDING, b"\x00" * 31, b"\x01" * 32)


def test_random_mutations_only_ever_raise_gpu_evidence_errors(
    hopper: HopperSample, nvidia_root: GpuRoot
) -> None:
    # Several flips, cuts and insertions at once, in the report and in the certificates: the
    # verifier must refuse each with one of its own errors, never crash with another exception.
    rng = random.Random(13)
    for _ in range(300):
        report = bytearray(hopper.report)
        chain = [bytearray(c) for c in hopper.chain]
        for _ in range(rng.randint(1, 4)):
            target = report if rng.random() < 0.6 else rng.choice(chain)
            pos = rng.randrange(len(target))
            op = rng.random()
            if op < 0.6:
                target[pos] ^= 1 << rng.randrange(8)
            elif op < 0.8:
                del target[pos : pos + rng.randint(1, 40)]
            else:
                target[pos:pos] = rng.randbytes(rng.randint(1, 8))
        with pytest.raises(GpuEvidenceError):
            verify_gpu_evidence(
                bytes(report),
                [bytes(c) for c in chain],
                root=nvidia_root,
                expected_nonce=hopper.nonce,
                at=AT,
            )


def test_certificates_of_other_key_types_are_refused(
    hopper: HopperSample, nvidia_root: GpuRoot
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a GPU")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2021, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2099, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, None)
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(GpuChainError):
        load_gpu_root(der)
    with pytest.raises(GpuEvidenceError):
        verify_gpu_evidence(
            hopper.report,
            (der, *hopper.chain[1:]),
            root=nvidia_root,
            expected_nonce=hopper.nonce,
            at=AT,
        )
