"""The demo's hardware-attestation episode, over HTTP (docs/PROTOCOL.md section 11).

A GPU vendor's simulated PKI makes three GPUs. Two chips enroll with evidence from their own
GPU (the agent answers each registry challenge through
:func:`agents.gpu_attest.answer_gpu_challenge`); a third chip key tries to enroll with the
first chip's GPU and is refused as a cloned hardware identity. The registry then re-attests
both chips: the first answers from its own GPU, the second from a swapped one, which the
registry logs and the verifier's ``gpu.device_changed`` rule turns into a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from agents.backends.gpu_simulated import SimulatedGpuVendor
from agents.errors import RegistryRejected
from agents.gpu_attest import answer_gpu_challenge
from attestation.certs import create_vendor_root, issue_chip_certificate
from attestation.keys import PrivateKey
from simulator.provision import AdminApi

__all__ = ["GPU_VENDOR_SEED", "GpuEpisode", "gpu_vendor", "run_gpu_episode"]

GPU_VENDOR_SEED = b"chipreg demo GPU vendor"
_VENDOR = "HW-Attested Chips"


def gpu_vendor() -> SimulatedGpuVendor:
    """The demo's GPU vendor; its root goes into ``CHIPREG_GPU_ROOT_FILES``."""
    return SimulatedGpuVendor("SimGPU", seed=GPU_VENDOR_SEED)


@dataclass(frozen=True)
class GpuEpisode:
    """What happened, for the demo's narration."""

    attested: dict[str, str]  # chip id -> hardware id
    clone_refused_with: str
    same_device: dict[str, bool]  # chip id -> whether re-attestation came from its GPU


def run_gpu_episode(base_url: str, admin_token: str, now: datetime) -> GpuEpisode:
    """Run the episode against a registry that trusts :func:`gpu_vendor`'s root."""
    gpus = gpu_vendor()
    root_key = PrivateKey.generate()
    root_pem = create_vendor_root(
        _VENDOR, root_key, not_before=now - timedelta(days=1), not_after=now + timedelta(days=365)
    )
    with httpx.Client(base_url=base_url, timeout=30) as http:
        api = AdminApi(http)
        vendor = api.post(
            "/v1/vendors", admin_token, {"name": _VENDOR, "root_certificate_pem": root_pem.decode()}
        )
        token = str(
            api.post(
                "/v1/tokens",
                admin_token,
                {"name": "hw enrollment", "role": "vendor", "vendor_id": vendor["id"]},
            )["token"]
        )

        def enroll(chip_id: str, key: PrivateKey, serial: str) -> dict[str, object]:
            challenge = api.post(
                "/v1/gpu/challenges", token, {"chip_public_key": key.public_key.to_b64()}
            )
            evidence = answer_gpu_challenge(
                gpus.manufacture(serial), key.public_key, str(challenge["nonce"]), "enrollment"
            )
            cert = issue_chip_certificate(
                root_pem=root_pem,
                root_key=root_key,
                chip_id=chip_id,
                model="H100-SXM5-80GB",
                chip_key=key.public_key,
                not_before=now - timedelta(days=1),
                not_after=now + timedelta(days=365),
            )
            body = {
                "vendor_id": vendor["id"],
                "certificate_pem": cert.decode(),
                "peak_tflops_bf16": 989.0,
                "tdp_watts": 700.0,
                "gpu_evidence": evidence,
            }
            return api.post("/v1/chips", token, body)

        keys = {c: PrivateKey.generate() for c in ("HW-0001", "HW-0002")}
        attested = {
            chip_id: str(enroll(chip_id, keys[chip_id], f"GH100-{chip_id}")["hardware_id"])
            for chip_id in keys
        }
        try:
            enroll("HW-CLONE", PrivateKey.generate(), "GH100-HW-0001")
            refused = "accepted (!)"
        except RegistryRejected as exc:
            refused = exc.code

        same: dict[str, bool] = {}
        for chip_id, serial in (("HW-0001", "GH100-HW-0001"), ("HW-0002", "GH100-SWAPPED")):
            challenge = api.post(f"/v1/chips/{chip_id}/gpu-challenges", admin_token, {})
            evidence = answer_gpu_challenge(
                gpus.manufacture(serial),
                keys[chip_id].public_key,
                str(challenge["nonce"]),
                "reattestation",
            )
            answer = api.post(f"/v1/chips/{chip_id}/gpu-evidence", admin_token, evidence)
            same[chip_id] = bool(answer["same_device"])
    return GpuEpisode(attested=attested, clone_refused_with=refused, same_device=same)
