"""Running an agent: flush jitter, the per-window line, status, metrics, offline and upload.

Against the real registry over real HTTP (SQLite and PostgreSQL) wherever a registry answers.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.agent import Agent, default_jitter, flush_spool
from agents.backends.simulated import SimulatedAccelerator, SimulatedBackend
from agents.chain import ChainState
from agents.client import RegistryClient
from agents.metrics import AgentMetrics
from agents.spool import Spool
from agents.status import STATUS_FILE, read_status
from attestation.timefmt import format_time
from simulator.fleet import workload
from simulator.provision import ProvisionedWorld, provision_world
from simulator.world import World
from tests.agents.test_end_to_end import stored_reports
from tests.conftest import LiveRegistry
from tests.registry.cli.test_commands import chipreg

WINDOW = timedelta(minutes=15)


def _agent(
    provisioned: ProvisionedWorld,
    root: Path,
    url: str | None,
    *,
    spool_dir: Path | None = None,
    **kwargs: Any,
) -> Agent:
    world = provisioned.world
    facility = world.facilities[1]
    backend = SimulatedBackend(
        SimulatedAccelerator(c.chip_id, c.model.name, c.key, workload(c))
        for c in world.chips.values()
        if c.facility_id == facility.facility_id
    )
    spool = Spool(spool_dir or root / "spool")
    chain = ChainState.load(root / "chain.json", spool)
    token = _token(provisioned)
    client = RegistryClient(url, token) if url else None
    return Agent(backend, spool, chain, client, status_file=root / STATUS_FILE, **kwargs)


def _token(provisioned: ProvisionedWorld) -> str:
    """The token of the operator of the world's first facility."""
    return provisioned.operator_tokens[f"operator:{provisioned.world.facilities[1].operator_id}"]


def test_default_jitter_is_a_tenth_of_the_window_capped_at_a_minute() -> None:
    assert default_jitter(timedelta(minutes=15)) == 60.0
    assert default_jitter(timedelta(minutes=5)) == 30.0
    assert default_jitter(timedelta(seconds=10)) == 1.0


def test_each_window_waits_a_seeded_jitter_then_flushes_and_says_so_in_one_line(
    live_registry: LiveRegistry,
    small_fleet: World,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provisioned = provision_world(small_fleet, live_registry.url, live_registry.admin_token)
    agent = _agent(provisioned, tmp_path, live_registry.url, jitter_s=30.0, rng=random.Random(42))
    expected = random.Random(42)
    waits: list[float] = []
    start = small_fleet.epoch + timedelta(hours=1)
    with caplog.at_level(logging.INFO, logger="agents.agent"):
        for i in range(2):
            window = agent.close_window(
                start + i * WINDOW, start + (i + 1) * WINDOW, lambda s: waits.append(s) is True
            )
            chips = len(agent.backend.discover())
            assert (window.signed, window.posted, window.accepted, window.spooled) == (
                chips,
                chips,
                chips,
                0,
            )
    assert waits == [expected.uniform(0, 30.0), expected.uniform(0, 30.0)]
    assert all(0 <= w <= 30.0 for w in waits) and waits[0] != waits[1]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("window ")]
    assert len(lines) == 2
    assert lines[1] == (
        f"window {format_time(start + WINDOW)}..{format_time(start + 2 * WINDOW)}: "
        f"{chips} reports signed, {chips} posted, {chips} accepted, 0 rejected, 0 spooled"
    )
    assert stored_reports(live_registry) == 2 * chips


def test_a_stop_during_the_jitter_keeps_the_window_spooled(
    live_registry: LiveRegistry, small_fleet: World, tmp_path: Path
) -> None:
    provisioned = provision_world(small_fleet, live_registry.url, live_registry.admin_token)
    agent = _agent(provisioned, tmp_path, live_registry.url, jitter_s=5.0)
    start = small_fleet.epoch + timedelta(hours=1)
    window = agent.close_window(start, start + WINDOW, lambda _s: True)
    assert window.posted == 0 and window.spooled == window.signed > 0
    assert stored_reports(live_registry) == 0


def test_status_reads_spool_depth_last_success_and_chain_heads(
    live_registry: LiveRegistry, small_fleet: World, tmp_path: Path
) -> None:
    provisioned = provision_world(small_fleet, live_registry.url, live_registry.admin_token)
    start = small_fleet.epoch + timedelta(hours=1)
    agent = _agent(provisioned, tmp_path, live_registry.url)
    agent.close_window(start, start + WINDOW)
    # The next window cannot be delivered: the registry is "down".
    down = _agent(provisioned, tmp_path, "http://127.0.0.1:9")
    down.close_window(start + WINDOW, start + 2 * WINDOW)
    chips = len(agent.backend.discover())

    status = read_status(tmp_path)
    assert status.spool_depth == chips and status.rejected_reports == 0
    assert status.last_success is not None
    assert status.last_error is not None and "cannot reach registry" in status.last_error
    assert status.last_window is not None and status.last_window.spooled == chips
    assert len(status.chains) == chips
    assert {h["seq"] for h in status.chains.values()} == {2}

    run = chipreg("agent", "status", "--state-dir", str(tmp_path), "-o", "json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == json.loads(json.dumps(status.to_dict()))
    table = chipreg("agent", "status", "--state-dir", str(tmp_path))
    assert f"spool depth:      {chips} report(s) waiting" in table.stdout
    assert all(chip in table.stdout for chip in status.chains)
    missing = chipreg("agent", "status", "--state-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no agent state" in missing.stderr


def test_metrics_use_dcgm_exporter_names_units_and_labels(
    live_registry: LiveRegistry, small_fleet: World, tmp_path: Path
) -> None:
    provisioned = provision_world(small_fleet, live_registry.url, live_registry.admin_token)
    metrics = AgentMetrics(hostname="node-1")
    agent = _agent(provisioned, tmp_path, live_registry.url, metrics=metrics)
    start = small_fleet.epoch + timedelta(hours=1)
    agent.close_window(start, start + WINDOW)
    agent.close_window(start + WINDOW, start + 2 * WINDOW)
    chips = agent.backend.discover()
    first = chips[0]
    telemetry = first.read_window(start, start + WINDOW)  # simulated: deterministic
    energy_j = telemetry.energy_j

    server = metrics.serve(0)
    try:
        body = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).text
    finally:
        server.close()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }
    # prometheus_client writes labels sorted by name.
    labels = f'{{Hostname="node-1",UUID="{first.chip_id}",gpu="0",modelName="{first.model}"}}'
    assert "# TYPE DCGM_FI_DEV_GPU_UTIL gauge" in body
    util = samples[f"DCGM_FI_DEV_GPU_UTIL{labels}"]
    assert 0 <= util <= 100 and util == pytest.approx(telemetry.utilization * 100)
    assert samples[f"DCGM_FI_DEV_POWER_USAGE{labels}"] == pytest.approx(energy_j / 900)
    # Energy is a running total in millijoules over both windows.
    assert samples[f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{labels}"] == pytest.approx(
        2 * energy_j * 1000, rel=1e-6
    )
    assert samples["chipreg_agent_reports_signed_total"] == 2 * len(chips)
    assert samples["chipreg_agent_reports_accepted_total"] == 2 * len(chips)
    assert samples["chipreg_agent_reports_rejected_total"] == 0
    assert samples["chipreg_agent_reports_spooled"] == 0
    assert samples["chipreg_agent_last_success_timestamp_seconds"] > 0


def test_offline_directory_is_uploaded_later_and_a_second_upload_is_a_no_op(
    live_registry: LiveRegistry, small_fleet: World, tmp_path: Path
) -> None:
    provisioned = provision_world(small_fleet, live_registry.url, live_registry.admin_token)
    offline = tmp_path / "usb"
    agent = _agent(provisioned, tmp_path / "state", None, spool_dir=offline)
    start = small_fleet.epoch + timedelta(hours=1)
    signed = sum(
        agent.close_window(start + i * WINDOW, start + (i + 1) * WINDOW).signed for i in range(2)
    )
    assert len(list(offline.glob("*.json"))) == signed and stored_reports(live_registry) == 0
    offline_status = read_status(tmp_path / "state", offline)
    assert offline_status.spool_depth == signed and offline_status.last_success is None
    assert offline_status.last_window is not None and offline_status.last_window.posted == 0
    copy = tmp_path / "copy"
    shutil.copytree(offline, copy)

    env = {"CHIPREG_AGENT_TOKEN": _token(provisioned)}
    run = chipreg("agent", "upload", str(offline), "--registry", live_registry.url, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "sent": signed,
        "acknowledged": signed,
        "rejected": 0,
        "interrupted_by": None,
    }
    assert stored_reports(live_registry) == signed and not list(offline.glob("*.json"))

    # The same files uploaded again (a second copy of the USB stick): replayed_report counts
    # as delivered, nothing is rejected or stored twice.
    with RegistryClient(live_registry.url, _token(provisioned)) as client:
        again = flush_spool(Spool(copy), client)
    assert (again.acknowledged, again.rejected, again.interrupted_by) == (signed, 0, None)
    assert stored_reports(live_registry) == signed


def test_run_needs_exactly_one_of_registry_or_offline(tmp_path: Path) -> None:
    base = ["agent", "run", "--backend", "simulated", "--state-dir", str(tmp_path)]
    neither = chipreg(*base)
    both = chipreg(*base, "--registry", "http://x", "--offline", str(tmp_path / "o"))
    for run in (neither, both):
        assert run.returncode == 1
        assert "give either --registry URL or --offline DIR" in run.stderr
