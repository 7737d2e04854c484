"""NVIDIA's genuine Hopper evidence and NVIDIA's own verifier, for the GPU evidence tests.

Both come from the ``nv-local-gpu-verifier`` package that ``make`` installs beside the venv
(``.venv/nv-local-gpu-verifier``; see the Makefile for why not into it). The files are read in
place, never copied into this repository. A missing package is a loud error, not a skip:
silently running none of the interop checks would look exactly like passing them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from attestation.gpu import split_pem_chain

NVREF_DIR = Path(os.environ.get("CHIPREG_NVREF_DIR", Path(sys.prefix) / "nv-local-gpu-verifier"))
RUNNER = Path(__file__).with_name("nvidia_runner.py")


def nvref_file(relative: str) -> Path:
    """A file of NVIDIA's package, e.g. ``verifier/samples/hopperCertChain.txt``."""
    path = NVREF_DIR / relative
    if not path.exists():
        raise FileNotFoundError(
            f"{path} missing: run `make .venv/.installed` (installs nv-local-gpu-verifier "
            f"into {NVREF_DIR}) or set CHIPREG_NVREF_DIR"
        )
    return path


@dataclass(frozen=True)
class HopperSample:
    """NVIDIA's genuine GH100 attestation report, its chain (PEM and DER) and NVIDIA's root."""

    report: bytes
    chain_pem: bytes
    chain: tuple[bytes, ...]
    root_pem: bytes

    @property
    def nonce(self) -> bytes:
        """The requester nonce the GPU signed over (GET_MEASUREMENTS bytes 4..36)."""
        return self.report[4:36]


def load_hopper_sample() -> HopperSample:
    """Read the sample from NVIDIA's installed package."""
    report_hex = nvref_file("verifier/samples/hopperAttestationReport.txt").read_text()
    chain_pem = nvref_file("verifier/samples/hopperCertChain.txt").read_bytes()
    return HopperSample(
        report=bytes.fromhex(report_hex.strip()),
        chain_pem=chain_pem,
        chain=split_pem_chain(chain_pem),
        root_pem=nvref_file("verifier/certs/verifier_device_root.pem").read_bytes(),
    )


@dataclass(frozen=True)
class Case:
    """One input to both verifiers."""

    report: bytes
    chain_pem: bytes
    root_pem: bytes
    nonce: bytes


def nvidia_verdicts(cases: list[Case], workdir: Path) -> list[str]:
    """NVIDIA's verdict on each case: ``"accept"`` or ``"reject: ..."`` (one subprocess)."""
    nvref_file("verifier/cc_admin_utils.py")
    cases_path, out_path = workdir / "cases.json", workdir / "verdicts.json"
    cases_path.write_text(
        json.dumps(
            [
                {
                    "report": c.report.hex(),
                    "chain_pem": c.chain_pem.decode(),
                    "root_pem": c.root_pem.decode(),
                    "nonce": c.nonce.hex(),
                }
                for c in cases
            ]
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(NVREF_DIR)
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(cases_path), str(out_path)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    verdicts: list[str] = json.loads(out_path.read_text())
    assert len(verdicts) == len(cases)
    return verdicts
