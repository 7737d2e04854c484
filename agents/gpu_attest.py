"""Answering the registry's GPU challenges (docs/PROTOCOL.md section 11).

The agent is untrusted: it only relays. It turns the registry nonce into the SPDM nonce bound
to the chip key, asks the GPU (NVML or simulated) to sign over it, and returns the evidence
as the registry's ``gpu_evidence`` body. A GPU that cannot attest raises
:class:`agents.errors.GpuEvidenceUnavailable` with the reason.
"""

from __future__ import annotations

import base64

from agents.backends.base import SupportsGpuEvidence
from attestation.gpu import ENROLLMENT_BINDING, REATTESTATION_BINDING, bind_spdm_nonce
from attestation.keys import PublicKey

__all__ = ["answer_gpu_challenge"]

_BINDINGS = {"enrollment": ENROLLMENT_BINDING, "reattestation": REATTESTATION_BINDING}


def answer_gpu_challenge(
    gpu: SupportsGpuEvidence, chip_key: PublicKey, nonce: str, purpose: str
) -> dict[str, object]:
    """The ``gpu_evidence`` body answering registry ``nonce`` (hex) for ``purpose``."""
    binding = _BINDINGS.get(purpose)
    if binding is None:
        raise ValueError(f"unknown GPU challenge purpose {purpose!r}")
    spdm_nonce = bind_spdm_nonce(binding, chip_key.raw, bytes.fromhex(nonce))
    evidence = gpu.attestation_evidence(spdm_nonce)
    return {
        "nonce": nonce,
        "report": base64.b64encode(evidence.report).decode(),
        "certificates": [base64.b64encode(c).decode() for c in evidence.cert_chain],
    }
