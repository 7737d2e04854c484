"""Simulated GPUs that answer SPDM measurement requests exactly as NVIDIA's do.

A :class:`SimulatedGpuVendor` stands in for NVIDIA's device PKI with the same five-level shape,
so evidence made here passes both chipreg's verifier and NVIDIA's own:

    root ("<vendor> Device Identity CA") -> product identity CA -> provisioner ICA
      -> device identity (one per GPU, its key fused at "manufacture")
        -> attestation key (DICE alias, carries the firmware id in a TCG DICE TcbInfo extension)

Keys are P-384 and derived from a seed when one is given, so a demo run is reproducible. The
private keys live in these objects: the simulator's stand-in for keys that on real hardware
never leave the GPU.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from agents.backends.base import Accelerator, WindowTelemetry
from agents.errors import GpuEvidenceUnavailable
from attestation.gpu import GpuEvidence
from attestation.keys import PublicKey
from attestation.spdm import (
    OPAQUE_DRIVER_VERSION,
    OPAQUE_FWID,
    OPAQUE_VBIOS_VERSION,
    MeasurementBlock,
    OpaqueField,
    encode_attestation_report,
)

__all__ = ["SimulatedGpu", "SimulatedGpuAccelerator", "SimulatedGpuVendor"]

_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
_NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # as NVIDIA's device certificates
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)
_TCG_DICE_TCB_INFO = x509.ObjectIdentifier("2.23.133.5.4.1")
_MEASUREMENT_BLOCKS = 8


def _key(seed: bytes | None, label: str) -> ec.EllipticCurvePrivateKey:
    if seed is None:
        return ec.generate_private_key(ec.SECP384R1())
    digest = hashlib.sha384(seed + b"\x00" + label.encode()).digest()
    return ec.derive_private_key(int.from_bytes(digest) % (_P384_ORDER - 1) + 1, ec.SECP384R1())


def _name(cn: str, org: str, serial: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ]
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
    extra: x509.ExtensionType | None = None,
) -> bytes:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(int.from_bytes(hashlib.sha256(subject.public_bytes()).digest()[:16]) >> 1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    if extra is not None:
        builder = builder.add_extension(extra, critical=False)
    # Deterministic ECDSA (RFC 6979): a seeded vendor reissues byte-identical certificates.
    signed = builder.sign(issuer_key, hashes.SHA384(), ecdsa_deterministic=True)
    return signed.public_bytes(serialization.Encoding.DER)


class SimulatedGpuVendor:
    """A GPU vendor's device PKI: a root and two CAs that certify each GPU it makes."""

    def __init__(self, name: str = "SimGPU", *, seed: bytes | None = None) -> None:
        self.name = name
        self._seed = seed
        self._root_key = _key(seed, "root")
        self._root_name = _name(f"{name} Device Identity CA", name)
        self.root_der = _cert(
            subject=self._root_name,
            key=self._root_key,
            issuer=self._root_name,
            issuer_key=self._root_key,
            ca=True,
        )
        product_key = _key(seed, "product")
        product_name = _name(f"{name} GH100 Identity", name)
        self._product_der = _cert(
            subject=product_name,
            key=product_key,
            issuer=self._root_name,
            issuer_key=self._root_key,
            ca=True,
        )
        self._ica_key = _key(seed, "provisioner")
        self._ica_name = _name(f"{name} GH100 Provisioner ICA 1", name)
        self._ica_der = _cert(
            subject=self._ica_name,
            key=self._ica_key,
            issuer=product_name,
            issuer_key=product_key,
            ca=True,
        )

    @property
    def root_pem(self) -> bytes:
        """The root certificate a registry configures as its GPU root."""
        return x509.load_der_x509_certificate(self.root_der).public_bytes(
            serialization.Encoding.PEM
        )

    def manufacture(
        self,
        serial: str,
        *,
        driver_version: str = "550.90.07",
        vbios: bytes = bytes.fromhex("009f009601000000"),
        firmware: bytes = b"simulated GSP firmware 1",
    ) -> SimulatedGpu:
        """Make one GPU: fuse its device key and certify it under the provisioner ICA."""
        device_key = _key(self._seed, f"device {serial}")
        device_name = _name(f"{self.name} GH100 A01 GSP BROM", self.name, serial)
        device_der = _cert(
            subject=device_name,
            key=device_key,
            issuer=self._ica_name,
            issuer_key=self._ica_key,
            ca=True,
        )
        return SimulatedGpu(
            vendor=self.name,
            serial=serial,
            device_key=device_key,
            device_name=device_name,
            ca_chain=(device_der, self._ica_der, self._product_der, self.root_der),
            seed=self._seed,
            driver_version=driver_version,
            vbios=vbios,
            firmware=firmware,
        )


class SimulatedGpu:
    """One simulated GPU: answers :meth:`attestation_evidence` like NVML on a CC-mode Hopper."""

    def __init__(
        self,
        *,
        vendor: str,
        serial: str,
        device_key: ec.EllipticCurvePrivateKey,
        device_name: x509.Name,
        ca_chain: tuple[bytes, ...],
        seed: bytes | None,
        driver_version: str,
        vbios: bytes,
        firmware: bytes,
    ) -> None:
        self.serial = serial
        self.driver_version = driver_version
        self._vbios = vbios
        self.fwid = hashlib.sha384(firmware).digest()
        # The DICE alias key is derived from the device key and the firmware in real GPUs;
        # here from the seed, the serial and the firmware, to the same effect.
        self._alias_key = _key(seed, f"alias {serial} {firmware.hex()}")
        tcb_info = x509.UnrecognizedExtension(
            _TCG_DICE_TCB_INFO,
            # A DER SEQUENCE whose last field is the FWID digest, as in NVIDIA's certificates.
            b"\x30\x32\x04\x30" + self.fwid,
        )
        leaf_der = _cert(
            subject=_name(
                f"{vendor} GH100 A01 GSP FMC LF", vendor, f"{serial}-{self.fwid[:8].hex()}"
            ),
            key=self._alias_key,
            issuer=device_name,
            issuer_key=device_key,
            ca=False,
            extra=tcb_info,
        )
        self.cert_chain = (leaf_der, *ca_chain)

    def attestation_evidence(self, nonce: bytes) -> GpuEvidence:
        """Sign fresh measurements over ``nonce``; return the report and the chain (with root)."""
        blocks = tuple(
            MeasurementBlock(
                index=i,
                value_type=0x80 | (i % 5),
                value=hashlib.sha384(self.fwid + bytes([i])).digest(),
            )
            for i in range(1, _MEASUREMENT_BLOCKS + 1)
        )
        opaque = (
            OpaqueField(OPAQUE_DRIVER_VERSION, self.driver_version.encode() + b"\x00"),
            OpaqueField(OPAQUE_VBIOS_VERSION, self._vbios),
            OpaqueField(OPAQUE_FWID, self.fwid),
        )

        def sign(transcript: bytes) -> bytes:
            der = self._alias_key.sign(transcript, ec.ECDSA(hashes.SHA384()))
            r, s = decode_dss_signature(der)
            return r.to_bytes(48, "big") + s.to_bytes(48, "big")

        report = encode_attestation_report(
            nonce=nonce,
            responder_nonce=secrets.token_bytes(32),
            blocks=blocks,
            opaque_fields=opaque,
            sign=sign,
        )
        return GpuEvidence(report=report, cert_chain=self.cert_chain)


class SimulatedGpuAccelerator:
    """An accelerator (its chip key and telemetry) sitting on a simulated GPU that attests.

    ``gpu`` may be swapped (a moved chip key) or set to ``None`` (a GPU that stops answering:
    confidential-computing mode switched off), to play the re-attestation findings.
    """

    def __init__(self, chip: Accelerator, gpu: SimulatedGpu | None) -> None:
        self.chip = chip
        self.gpu = gpu

    @property
    def chip_id(self) -> str:
        """The chip's id."""
        return self.chip.chip_id

    @property
    def model(self) -> str:
        """The chip's model."""
        return self.chip.model

    @property
    def public_key(self) -> PublicKey:
        """The chip's Ed25519 key."""
        return self.chip.public_key

    def read_window(self, start: datetime, end: datetime) -> WindowTelemetry:
        """The chip's telemetry."""
        return self.chip.read_window(start, end)

    def sign(self, message: bytes) -> bytes:
        """Sign with the chip key."""
        return self.chip.sign(message)

    def attestation_evidence(self, nonce: bytes) -> GpuEvidence:
        """The GPU's evidence over ``nonce``; unavailable once the GPU is gone."""
        if self.gpu is None:
            raise GpuEvidenceUnavailable("cc_off", "the simulated GPU no longer attests")
        return self.gpu.attestation_evidence(nonce)
