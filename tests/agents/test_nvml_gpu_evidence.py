"""GPU evidence through NVML's confidential-computing calls: a fake ``pynvml`` whose GPU is a
simulated one (real SPDM bytes, real signatures), each reason evidence can be missing, and the
real ``pynvml`` on this driver-less host."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agents.backends.base import SupportsGpuEvidence
from agents.backends.gpu_simulated import SimulatedGpu, SimulatedGpuVendor
from agents.backends.nvml import NvmlBackend, collect_gpu_evidence
from agents.errors import GpuEvidenceUnavailable
from attestation.gpu import load_gpu_root, verify_gpu_evidence

NOT_SUPPORTED = 3
FUNCTION_NOT_FOUND = 13
VENDOR = SimulatedGpuVendor(seed=b"nvml tests")


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class FakeCcGpu:
    uuid: str
    sim: SimulatedGpu | None  # None: a GPU that cannot attest (pre-Hopper)


class FakeCcPynvml:
    """The slice of pynvml used for evidence, returning ctypes-like structures as pynvml does."""

    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = NOT_SUPPORTED

    def __init__(self, gpus: list[FakeCcGpu], *, cc_on: bool = True, driver_has_cc: bool = True):
        self.gpus = gpus
        self.cc_on = cc_on
        self.driver_has_cc = driver_has_cc
        self.asked: list[bytes] = []

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeCcGpu:
        return self.gpus[i]

    def nvmlDeviceGetSerial(self, h: FakeCcGpu) -> str:
        return h.uuid

    def nvmlDeviceGetUUID(self, h: FakeCcGpu) -> str:
        return h.uuid

    def nvmlDeviceGetName(self, h: FakeCcGpu) -> bytes:
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetPciInfo(self, h: FakeCcGpu) -> SimpleNamespace:
        return SimpleNamespace(busId=b"00000000:18:00.0")

    def nvmlSystemGetConfComputeState(self) -> SimpleNamespace:
        if not self.driver_has_cc:
            raise FakeNVMLError(FUNCTION_NOT_FOUND)
        return SimpleNamespace(environment=1, ccFeature=1 if self.cc_on else 0, devToolsMode=0)

    def nvmlDeviceGetConfComputeGpuAttestationReport(self, h: FakeCcGpu, nonce: bytes) -> Any:
        if h.sim is None:
            raise FakeNVMLError(NOT_SUPPORTED)
        self.asked.append(bytes(nonce))
        report = h.sim.attestation_evidence(bytes(nonce)).report
        # pynvml returns a fixed 8 KiB buffer and the length actually used.
        buf = (ctypes.c_uint8 * 0x2000)(*report)
        return SimpleNamespace(attestationReportSize=len(report), attestationReport=buf)

    def nvmlDeviceGetConfComputeGpuCertificate(self, h: FakeCcGpu) -> Any:
        if h.sim is None:
            raise FakeNVMLError(NOT_SUPPORTED)
        pem = b"".join(
            x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM)
            for d in h.sim.cert_chain
        )
        buf = (ctypes.c_uint8 * 0x1400)(*pem)
        return SimpleNamespace(attestationCertChainSize=len(pem), attestationCertChain=buf)


def test_evidence_collected_through_nvml_verifies(tmp_path: Path) -> None:
    sim = VENDOR.manufacture("GPU-0001")
    nvml = FakeCcPynvml([FakeCcGpu("GPU-0001", sim)])
    nonce = os.urandom(32)
    evidence = NvmlBackend(tmp_path, nvml=nvml).attestation_evidence("GPU-0001", nonce)
    assert nvml.asked == [nonce]
    claims = verify_gpu_evidence(
        evidence.report,
        evidence.cert_chain,
        root=load_gpu_root(VENDOR.root_pem),
        expected_nonce=nonce,
        at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert claims.device_serial == "GPU-0001"
    assert isinstance(sim, SupportsGpuEvidence)


@pytest.mark.parametrize(
    ("nvml", "reason", "hint"),
    [
        (
            FakeCcPynvml([FakeCcGpu("G", None)], cc_on=False),
            "cc_off",
            "confidential-computing mode is off",
        ),
        (FakeCcPynvml([FakeCcGpu("G", None)], driver_has_cc=False), "old_driver", "R535"),
        (FakeCcPynvml([FakeCcGpu("G", None)]), "not_supported", "Hopper"),
        (SimpleNamespace(NVMLError=FakeNVMLError), "old_bindings", "nvidia-ml-py"),
    ],
)
def test_each_reason_evidence_is_missing_is_named(nvml: Any, reason: str, hint: str) -> None:
    with pytest.raises(GpuEvidenceUnavailable) as info:
        collect_gpu_evidence(nvml, FakeCcGpu("G", None), os.urandom(32))
    assert info.value.reason == reason
    assert hint in str(info.value)


def test_unknown_gpu_is_named(tmp_path: Path) -> None:
    nvml = FakeCcPynvml([FakeCcGpu("GPU-0001", VENDOR.manufacture("GPU-0001"))])
    with pytest.raises(GpuEvidenceUnavailable) as info:
        NvmlBackend(tmp_path, nvml=nvml).attestation_evidence("GPU-9999", os.urandom(32))
    assert info.value.reason == "nvml_error" and "GPU-9999" in str(info.value)


def test_real_pynvml_without_driver_says_no_nvml(tmp_path: Path) -> None:
    with pytest.raises(GpuEvidenceUnavailable) as info:
        NvmlBackend(tmp_path).attestation_evidence("any", os.urandom(32))
    assert info.value.reason == "no_nvml"
    assert "no NVIDIA driver/NVML found on this host" in str(info.value)


def test_cli_prints_verified_evidence_or_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from registry.cli import agent as agent_cli
    from registry.cli.main import main

    # This host has no driver: the reason, as JSON, exit 1.
    assert main(["agent", "gpu-evidence", "--chip-id", "GPU-0001"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["available"] is False and out["reason"] == "no_nvml"

    # With a (fake) CC-mode GPU: the evidence, verified against the root given.
    nvml = FakeCcPynvml([FakeCcGpu("GPU-0001", VENDOR.manufacture("GPU-0001"))])
    monkeypatch.setattr(agent_cli, "NvmlBackend", lambda d: NvmlBackend(d, nvml=nvml))
    root = tmp_path / "root.pem"
    root.write_bytes(VENDOR.root_pem)
    nonce = "11" * 32
    argv = ["agent", "gpu-evidence", "--chip-id", "GPU-0001", "--nonce", nonce, "--root", str(root)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nonce"] == nonce and len(out["certificates"]) == 5
    assert out["verified"]["device_serial"] == "GPU-0001"
    other = tmp_path / "other.pem"
    other.write_bytes(SimulatedGpuVendor(seed=b"other").root_pem)
    assert main([*argv[:-1], str(other)]) == 0
    assert json.loads(capsys.readouterr().out)["verified"]["error"] == "gpu_wrong_root"
