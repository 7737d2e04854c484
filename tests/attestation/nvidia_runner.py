"""Run NVIDIA's own verifier (nv-local-gpu-verifier) on evidence cases; not a test module.

Executed as a script in a subprocess whose PYTHONPATH is the NVIDIA package directory and
whose working directory is not the repository: NVIDIA's top-level package is also called
``verifier`` and must not meet chipreg's. Usage: ``nvidia_runner.py CASES.json OUT.json``.
Each case is ``{"report": hex, "chain_pem": str, "root_pem": str, "nonce": hex}``; each
result is ``"accept"`` or ``"reject: <reason>"``.

It follows NVIDIA's ``cc_admin.attest`` for one GPU, minus the network steps (OCSP, RIM
fetch): parse the report, replace the chain's last certificate by the configured root as
``GpuCertificateChains`` does, verify the chain (with the FWID comparison), then the nonce and
the report signature (``CcAdminUtils.verify_attestation_report``). The driver and VBIOS
versions NVML would give are taken from the report, so that comparison is neutral.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _verdict(case: dict[str, Any]) -> str:
    from OpenSSL import crypto
    from verifier.attestation import AttestationReport
    from verifier.cc_admin_utils import CcAdminUtils
    from verifier.config import HopperSettings
    from verifier.nvml.gpu_cert_chains import GpuCertificateChains
    from verifier.utils import format_vbios_version

    settings = HopperSettings()
    try:
        report = AttestationReport(bytes.fromhex(case["report"]), settings)
    except Exception as e:  # noqa: BLE001  NVIDIA's parser raises assorted errors; any is a rejection
        return f"reject: parse {type(e).__name__}"
    try:
        chain = GpuCertificateChains.extract_cert_chain(case["chain_pem"].encode())[:-1]
        chain.append(crypto.load_certificate(crypto.FILETYPE_PEM, case["root_pem"].encode()))
        opaque = report.get_response_message().get_opaque_data()
        ok = CcAdminUtils.verify_gpu_certificate_chain(
            chain, settings, opaque.get_data("OPAQUE_FIELD_ID_FWID").hex()
        )
        if isinstance(ok, tuple):
            ok = ok[0]
        if not ok:
            return "reject: chain"
        driver = opaque.get_data("OPAQUE_FIELD_ID_DRIVER_VERSION").decode(errors="replace")
        driver = driver.rstrip("\x00")
        vbios = format_vbios_version(opaque.get_data("OPAQUE_FIELD_ID_VBIOS_VERSION"))
        CcAdminUtils.verify_attestation_report(
            report, chain[0], bytes.fromhex(case["nonce"]), driver, vbios, settings
        )
    except Exception as e:  # noqa: BLE001  any exception of NVIDIA's flow is its rejection
        return f"reject: {type(e).__name__}"
    return "accept"


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    out = [_verdict(c) for c in cases]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
