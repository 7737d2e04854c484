"""The registry asks chips for fresh GPU evidence through their agent: one chip answers from its
GPU, one whose GPU stopped attesting does not; the verifier reports the silent one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.agent import Agent
from agents.backends.base import Accelerator
from agents.backends.gpu_simulated import SimulatedGpuAccelerator, SimulatedGpuVendor
from agents.backends.simulated import SimulatedAccelerator, Workload
from agents.chain import ChainState
from agents.client import RegistryClient
from agents.gpu_attest import answer_gpu_challenge
from agents.spool import Spool
from registry.settings import Settings
from tests.conftest import LiveRegistry
from tests.registry.factories import key, make_world, ok

VENDOR = SimulatedGpuVendor("SimGPU", seed=b"agent reattestation")
T = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def registry_settings(database_url: str, tmp_path: Path) -> Settings:
    root = tmp_path / "gpu-root.pem"
    root.write_bytes(VENDOR.root_pem)
    return Settings(
        database_url=database_url,
        log_key_file=tmp_path / "log-key",
        log_origin="test.chipreg.local/log",
        checkpoint_interval_s=0.05,
        gpu_root_files=[root],
    )


class _Backend:
    name = "test"

    def __init__(self, chips: Sequence[Accelerator]) -> None:
        self.chips = list(chips)

    def discover(self) -> Sequence[Accelerator]:
        return list(self.chips)


def test_agent_answers_open_challenges_and_a_silent_gpu_lapses(
    live_registry: LiveRegistry, tmp_path: Path
) -> None:
    world = make_world(live_registry)
    clock = {"now": T}
    live_registry.context.clock = lambda: clock["now"]
    accs = {}
    for chip_id in ("HW-A", "HW-B"):
        chip = SimulatedAccelerator(chip_id, "H100-SXM5-80GB", key(f"chip:{chip_id}"), Workload())
        acc = SimulatedGpuAccelerator(chip, VENDOR.manufacture(f"GPU-{chip_id}"))
        with live_registry.client(world.vendor_token) as http:
            ch = ok(
                http.post("/v1/gpu/challenges", json={"chip_public_key": acc.public_key.to_b64()}),
                201,
            )
            ok(
                http.post(
                    "/v1/chips",
                    json={
                        "vendor_id": world.vendor_id,
                        "certificate_pem": world.certificate(
                            chip_id, key(f"chip:{chip_id}")
                        ).decode(),
                        "peak_tflops_bf16": 989.0,
                        "tdp_watts": 700.0,
                        "gpu_evidence": answer_gpu_challenge(
                            acc, acc.public_key, ch["nonce"], "enrollment"
                        ),
                    },
                ),
                201,
            )
        world.install(chip_id)
        accs[chip_id] = acc
    accs["HW-B"].gpu = None  # its GPU stops attesting (CC mode off, GPU pulled, ...)

    clock["now"] = T + timedelta(hours=5)
    with live_registry.client(live_registry.admin_token) as admin:
        for chip_id in accs:
            ok(admin.post(f"/v1/chips/{chip_id}/gpu-challenges"), 201)

    spool = Spool(tmp_path / "spool")
    with RegistryClient(live_registry.url, world.operator_token) as client:
        agent = Agent(
            _Backend(list(accs.values())),
            spool,
            ChainState.load(tmp_path / "chain.json", spool),
            client,
        )
        assert agent.answer_gpu_challenges() == 1
        assert client.open_gpu_challenges("HW-A") == []
        assert len(client.open_gpu_challenges("HW-B")) == 1
        assert agent.answer_gpu_challenges() == 0  # nothing new for A, B still cannot

    clock["now"] = T + timedelta(hours=8)
    with live_registry.client(live_registry.admin_token) as admin:
        ok(admin.post("/v1/verifier/runs", json={"policy": "demo"}))
        findings = ok(admin.get("/v1/findings", params={"limit": 500}))["findings"]
    lapsed = sorted(f["subject_id"] for f in findings if f["kind"] == "gpu_attestation_lapsed")
    assert lapsed == ["HW-B"]  # A proved its GPU 3 h ago; B last 8 h ago (demo: 6 h)
