"""Simulated GPUs: their evidence is read by chipreg's verifier and by NVIDIA's own."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agents.backends.gpu_simulated import SimulatedGpuVendor
from attestation.errors import GpuEvidenceError, GpuNonceError, GpuWrongRootError
from attestation.gpu import load_gpu_root, verify_gpu_evidence
from attestation.spdm import parse_attestation_report
from tests.attestation.nvidia_reference import Case, load_hopper_sample, nvidia_verdicts

AT = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def vendor() -> SimulatedGpuVendor:
    return SimulatedGpuVendor(seed=b"test vendor")


def _pem(chain: tuple[bytes, ...]) -> bytes:
    return b"".join(
        x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for d in chain
    )


def test_simulated_evidence_verifies_and_names_the_gpu(vendor: SimulatedGpuVendor) -> None:
    gpu = vendor.manufacture("SIM-0001", driver_version="570.10.01")
    nonce = os.urandom(32)
    evidence = gpu.attestation_evidence(nonce)
    claims = verify_gpu_evidence(
        evidence.report,
        evidence.cert_chain,
        root=load_gpu_root(vendor.root_pem),
        expected_nonce=nonce,
        at=AT,
    )
    assert claims.nonce == nonce
    assert claims.device_serial == "SIM-0001"
    assert claims.driver_version == "570.10.01"
    assert claims.vbios_version == "96.00.9f.00.01"
    assert claims.fwid == gpu.fwid
    assert len(claims.measurements) == 8
    assert len(evidence.cert_chain) == 5  # the shape of NVIDIA's chains, root included


def test_hardware_id_is_per_gpu_and_survives_firmware_updates(vendor: SimulatedGpuVendor) -> None:
    root = load_gpu_root(vendor.root_pem)

    def claims(gpu_serial: str, firmware: bytes) -> tuple[str, str]:
        gpu = vendor.manufacture(gpu_serial, firmware=firmware)
        nonce = os.urandom(32)
        e = gpu.attestation_evidence(nonce)
        c = verify_gpu_evidence(e.report, e.cert_chain, root=root, expected_nonce=nonce, at=AT)
        return c.hardware_id, c.attestation_key_fingerprint

    a1 = claims("SIM-A", b"fw 1")
    a2 = claims("SIM-A", b"fw 2")
    b1 = claims("SIM-B", b"fw 1")
    assert a1[0] == a2[0] and a1[1] != a2[1]  # same GPU, new alias key
    assert a1[0] != b1[0]
    # Seeded vendors are reproducible: the same seed makes the same GPU.
    again = SimulatedGpuVendor(seed=b"test vendor").manufacture("SIM-A", firmware=b"fw 1")
    assert again.cert_chain == vendor.manufacture("SIM-A", firmware=b"fw 1").cert_chain


def test_each_collection_is_fresh(vendor: SimulatedGpuVendor) -> None:
    gpu = vendor.manufacture("SIM-0002")
    nonce = os.urandom(32)
    first, second = gpu.attestation_evidence(nonce), gpu.attestation_evidence(nonce)
    assert parse_attestation_report(first.report).response.nonce != (
        parse_attestation_report(second.report).response.nonce
    )
    with pytest.raises(GpuNonceError):
        verify_gpu_evidence(
            first.report,
            first.cert_chain,
            root=load_gpu_root(vendor.root_pem),
            expected_nonce=os.urandom(32),
            at=AT,
        )


def test_simulated_gpu_is_not_an_nvidia_gpu(vendor: SimulatedGpuVendor) -> None:
    gpu = vendor.manufacture("SIM-0003")
    nonce = os.urandom(32)
    e = gpu.attestation_evidence(nonce)
    nvidia_root = load_gpu_root(load_hopper_sample().root_pem)
    with pytest.raises(GpuWrongRootError):
        verify_gpu_evidence(e.report, e.cert_chain, root=nvidia_root, expected_nonce=nonce, at=AT)
    other_vendor = SimulatedGpuVendor(seed=b"another vendor")
    with pytest.raises(GpuEvidenceError):
        verify_gpu_evidence(
            e.report,
            e.cert_chain[:-1],
            root=load_gpu_root(other_vendor.root_pem),
            expected_nonce=nonce,
            at=AT,
        )


def test_nvidia_reference_verifier_accepts_simulated_evidence(
    vendor: SimulatedGpuVendor, tmp_path: Path
) -> None:
    # Format fidelity: NVIDIA's own parser, chain check (five certificates, FWID) and signature
    # check accept what the simulator makes, under the simulator's root, and nothing else.
    gpu = vendor.manufacture("SIM-0004")
    nonce = os.urandom(32)
    e = gpu.attestation_evidence(nonce)
    hopper = load_hopper_sample()
    verdicts = nvidia_verdicts(
        [
            Case(e.report, _pem(e.cert_chain), vendor.root_pem, nonce),
            Case(e.report, _pem(e.cert_chain), hopper.root_pem, nonce),
            Case(e.report, _pem(e.cert_chain), vendor.root_pem, os.urandom(32)),
        ],
        tmp_path,
    )
    assert verdicts[0] == "accept"
    assert verdicts[1] != "accept" and verdicts[2] != "accept"
