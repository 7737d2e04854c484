"""Hardware-attested enrollment over HTTP: a GPU challenge, simulated GPU evidence bound to the
chip key, the clone refused, the evidence logged and re-verified by the partner's replay."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from agents.backends.gpu_simulated import SimulatedGpu, SimulatedGpuVendor
from agents.gpu_attest import answer_gpu_challenge
from attestation.gpu import ENROLLMENT_BINDING, bind_spdm_nonce
from attestation.keys import PrivateKey
from attestation.logentries import GPU_ATTESTATION
from attestation.records import GpuAttestationRecord
from audit.facts import check_run
from audit.replay import Replay
from registry.cli.audit import fetch_entries
from registry.settings import Settings
from tests.conftest import LiveRegistry
from tests.registry.factories import World, key, make_world, ok

GPU_VENDOR = SimulatedGpuVendor("SimGPU", seed=b"registry tests")


@pytest.fixture
def registry_settings(database_url: str, tmp_path: Path) -> Settings:
    root = tmp_path / "gpu-root.pem"
    root.write_bytes(GPU_VENDOR.root_pem)
    return Settings(
        database_url=database_url,
        log_key_file=tmp_path / "log-key",
        log_origin="test.chipreg.local/log",
        checkpoint_interval_s=0.05,
        gpu_root_files=[root],
    )


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    return make_world(live_registry)


def _challenge(http: httpx.Client, chip_key: PrivateKey) -> dict[str, str]:
    return ok(
        http.post("/v1/gpu/challenges", json={"chip_public_key": chip_key.public_key.to_b64()}),
        201,
    )


def _evidence(gpu: SimulatedGpu, nonce: str, spdm_nonce: bytes) -> dict[str, object]:
    e = gpu.attestation_evidence(spdm_nonce)
    return {
        "nonce": nonce,
        "report": base64.b64encode(e.report).decode(),
        "certificates": [base64.b64encode(c).decode() for c in e.cert_chain],
    }


def _enroll(
    world: World, http: httpx.Client, chip_id: str, gpu_evidence: dict[str, object] | None
) -> httpx.Response:
    chip_key = key(f"chip:{chip_id}")
    body: dict[str, object] = {
        "vendor_id": world.vendor_id,
        "certificate_pem": world.certificate(chip_id, chip_key).decode(),
        "peak_tflops_bf16": 989.0,
        "tdp_watts": 700.0,
    }
    if gpu_evidence is not None:
        body["gpu_evidence"] = gpu_evidence
    return http.post("/v1/chips", json=body)


def _bound(world: World, http: httpx.Client, chip_id: str, gpu: SimulatedGpu) -> dict[str, object]:
    """Ask for a challenge for ``chip_id``'s key and answer it with ``gpu``."""
    chip_key = key(f"chip:{chip_id}")
    ch = _challenge(http, chip_key)
    expected = bind_spdm_nonce(
        ENROLLMENT_BINDING, chip_key.public_key.raw, bytes.fromhex(ch["nonce"])
    )
    assert ch["spdm_nonce"] == expected.hex()
    return _evidence(gpu, ch["nonce"], expected)


def _replay(live_registry: LiveRegistry) -> Replay:
    replay = Replay()
    with live_registry.client(live_registry.admin_token) as http:
        for entry in fetch_entries(http, 1_000_000):
            replay.feed(entry.index, entry.kind, entry.body)
    return replay


def test_hardware_attested_enrollment_clone_refused_and_audited(
    live_registry: LiveRegistry, world: World
) -> None:
    gpu = GPU_VENDOR.manufacture("GPU-SN-0001")
    with live_registry.client(world.vendor_token) as http:
        chip = ok(_enroll(world, http, "NV-HW-0001", _bound(world, http, "NV-HW-0001", gpu)), 201)
        assert chip["hardware_id"] is not None and chip["hardware_attested_at"] is not None

        # The same GPU behind a second chip key: a cloned hardware identity.
        clone = _enroll(world, http, "NV-HW-0002", _bound(world, http, "NV-HW-0002", gpu))
        assert clone.status_code == 409
        assert clone.json()["code"] == "duplicate_hardware_identity"

        # Another GPU is fine; the vendor-root path without evidence stays.
        other = GPU_VENDOR.manufacture("GPU-SN-0002")
        ok(_enroll(world, http, "NV-HW-0003", _bound(world, http, "NV-HW-0003", other)), 201)
        plain = ok(_enroll(world, http, "NV-PLAIN-0001", None), 201)
        assert plain["hardware_id"] is None
        assert http.get("/v1/chips/NV-HW-0002").status_code == 404  # no half-write

    replay = _replay(live_registry)
    assert replay.problems == []
    assert replay.counts[GPU_ATTESTATION] == 2
    assert set(replay.gpu_hardware.values()) == {"NV-HW-0001", "NV-HW-0003"}
    assert replay.gpu_hardware.get(chip["hardware_id"]) == "NV-HW-0001"

    # From the log alone: a logged report altered after the fact fails the partner's replay,
    # and so does evidence re-labelled as another chip's.
    with live_registry.client(live_registry.admin_token) as http:
        entries = list(fetch_entries(http, 1_000_000))
    first_gpu = next(e for e in entries if e.kind == GPU_ATTESTATION)
    rec = GpuAttestationRecord.from_json(first_gpu.body)
    report = bytearray(rec.report)
    report[-1] ^= 1
    for tampered in (replace(rec, report=bytes(report)), replace(rec, chip_id="NV-HW-0003")):
        replay = Replay()
        for e in entries:
            body = tampered.to_json() if e is first_gpu else e.body
            replay.feed(e.index, e.kind, body)
        assert [p.check for p in replay.problems] == [GPU_ATTESTATION]


def test_evidence_for_another_key_nonce_or_root_is_refused(
    live_registry: LiveRegistry, world: World
) -> None:
    gpu = GPU_VENDOR.manufacture("GPU-SN-0100")
    with live_registry.client(world.vendor_token) as http:
        # Evidence bound to chip A's key submitted for chip B: B's challenge was never issued.
        ev = _bound(world, http, "NV-A", gpu)
        r = _enroll(world, http, "NV-B", ev)
        assert (r.status_code, r.json()["code"]) == (422, "nonce_mismatch")

        # The right challenge, but the GPU signed another nonce (no binding to the chip key).
        chip_key = key("chip:NV-C")
        ch = _challenge(http, chip_key)
        r = _enroll(world, http, "NV-C", _evidence(gpu, ch["nonce"], bytes.fromhex(ch["nonce"])))
        assert (r.status_code, r.json()["code"]) == (422, "gpu_nonce_mismatch")

        # A GPU of an untrusted vendor.
        rogue = SimulatedGpuVendor("SimGPU", seed=b"rogue").manufacture("GPU-SN-0100")
        r = _enroll(world, http, "NV-D", _bound(world, http, "NV-D", rogue))
        assert (r.status_code, r.json()["code"]) == (422, "gpu_wrong_root")

        # A tampered report.
        ev = _bound(world, http, "NV-E", gpu)
        report = bytearray(base64.b64decode(str(ev["report"])))
        report[60] ^= 1
        ev["report"] = base64.b64encode(bytes(report)).decode()
        r = _enroll(world, http, "NV-E", ev)
        assert (r.status_code, r.json()["code"]) == (422, "gpu_bad_signature")

        # A nonce is answered once; an unknown one never.
        ev = _bound(world, http, "NV-F", gpu)
        ok(_enroll(world, http, "NV-F", ev), 201)
        ev_again = dict(ev)
        r = _enroll(world, http, "NV-F2", {**ev_again, "nonce": "ab" * 32})
        assert (r.status_code, r.json()["code"]) == (404, "unknown_nonce")

        # Garbage is a 4xx with the evidence code, never a 500.
        ch = _challenge(http, key("chip:NV-G"))
        r = _enroll(
            world, http, "NV-G", {"nonce": ch["nonce"], "report": "AAAA", "certificates": ["AAAA"]}
        )
        assert (r.status_code, r.json()["code"]) == (422, "gpu_evidence_malformed")

    with live_registry.client(live_registry.admin_token) as http:
        entries = list(fetch_entries(http, 1_000_000))
    gpu_records = [
        GpuAttestationRecord.from_json(e.body) for e in entries if e.kind == GPU_ATTESTATION
    ]
    assert [r.chip_id for r in gpu_records] == ["NV-F"]


def test_gpu_challenges_need_configured_roots(database_url: str, tmp_path: Path) -> None:
    from registry.api.app import create_app
    from registry.server import BackgroundServer

    settings = Settings(
        database_url=database_url, log_key_file=tmp_path / "log-key", checkpoint_interval_s=0
    )
    app = create_app(settings)
    with BackgroundServer(app) as server:
        from registry.api.context import utc_now
        from registry.auth import Role
        from registry.services.accounts import AccountService

        with app.state.context.sessions() as session:
            token = AccountService(session, utc_now).create_token("a", Role.ADMIN).secret
            session.commit()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as h:
            r = h.post("/v1/gpu/challenges", json={"chip_public_key": key("x").public_key.to_b64()})
            assert (r.status_code, r.json()["code"]) == (409, "gpu_attestation_disabled")
    app.state.context.engine.dispose()


def test_reattestation_through_the_agent(live_registry: LiveRegistry, world: World) -> None:
    gpu = GPU_VENDOR.manufacture("GPU-SN-0300")
    chip_key = key("chip:NV-RE-1")
    with live_registry.client(world.vendor_token) as http:
        ch = _challenge(http, chip_key)
        body = answer_gpu_challenge(gpu, chip_key.public_key, ch["nonce"], "enrollment")
        enrolled = ok(_enroll(world, http, "NV-RE-1", body), 201)
        ok(_enroll(world, http, "NV-RE-PLAIN", None), 201)
    world.install("NV-RE-1")

    admin = live_registry.client(live_registry.admin_token)
    operator = live_registry.client(world.operator_token)
    with admin, operator:
        # The same GPU answers: logged, same device.
        ch = ok(admin.post("/v1/chips/NV-RE-1/gpu-challenges"), 201)
        assert ch["purpose"] == "reattestation"
        body = answer_gpu_challenge(gpu, chip_key.public_key, ch["nonce"], "reattestation")
        first = ok(operator.post("/v1/chips/NV-RE-1/gpu-evidence", json=body), 201)
        assert first["same_device"] is True
        assert first["hardware_id"] == enrolled["hardware_id"]
        again = operator.post("/v1/chips/NV-RE-1/gpu-evidence", json=body)
        assert (again.status_code, again.json()["code"]) == (409, "replayed_nonce")

        # Enrollment evidence cannot answer a re-attestation (the binding differs).
        ch = ok(admin.post("/v1/chips/NV-RE-1/gpu-challenges"), 201)
        wrong = answer_gpu_challenge(gpu, chip_key.public_key, ch["nonce"], "enrollment")
        r = operator.post("/v1/chips/NV-RE-1/gpu-evidence", json=wrong)
        assert (r.status_code, r.json()["code"]) == (422, "gpu_nonce_mismatch")

        # Another GPU answers: valid evidence, logged, but not the enrolled device.
        ch = ok(admin.post("/v1/chips/NV-RE-1/gpu-challenges"), 201)
        swapped = GPU_VENDOR.manufacture("GPU-SN-0301")
        body = answer_gpu_challenge(swapped, chip_key.public_key, ch["nonce"], "reattestation")
        second = ok(operator.post("/v1/chips/NV-RE-1/gpu-evidence", json=body), 201)
        assert second["same_device"] is False

        r = admin.post("/v1/chips/NV-RE-PLAIN/gpu-challenges")
        assert (r.status_code, r.json()["code"]) == (409, "not_hardware_attested")
        r = operator.post("/v1/chips/NV-RE-1/gpu-challenges")
        assert r.status_code == 403

        # The verifier makes the swapped GPU a finding, and the chip that stops answering
        # another once the policy's interval (demo: 6 h) has passed.
        ok(admin.post("/v1/verifier/runs", json={"policy": "demo"}))
        later_at = (datetime.now(UTC) + timedelta(hours=7)).replace(microsecond=0)
        later = later_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        # The registry refuses an as_of after its own clock: move its clock there first.
        world.registry.context.clock = lambda: later_at
        ok(admin.post("/v1/verifier/runs", json={"policy": "demo", "as_of": later}))
        findings = ok(admin.get("/v1/findings", params={"limit": 500}))["findings"]
        mine = sorted(
            f["kind"]
            for f in findings
            if f["subject_id"] == "NV-RE-1" and f["rule_id"].startswith("gpu.")
        )
        assert mine == ["gpu_attestation_lapsed", "gpu_device_changed"]

    # The partner re-derives both from the log alone.
    replay = _replay(live_registry)
    assert replay.problems == []
    assert replay.counts[GPU_ATTESTATION] == 3
    checks = [check_run(replay, run) for run in replay.runs]
    assert len(checks) == 2 and all(c.ok for c in checks)
