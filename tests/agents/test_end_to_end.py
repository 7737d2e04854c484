"""The agent against the real registry over real HTTP: outages, lost acknowledgements, restarts.

Acknowledged means durable: a report leaves the agent's spool only after the registry said it
committed it, and the registry keeps everything it acknowledged across a restart.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from agents.agent import Agent
from agents.backends.simulated import SimulatedAccelerator, SimulatedBackend
from agents.chain import ChainState
from agents.client import RegistryClient
from agents.errors import TransportError
from agents.spool import Spool
from registry.api.app import create_app
from registry.api.context import utc_now
from registry.auth import Role
from registry.db.models import Report
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.settings import Settings
from simulator.fleet import workload
from simulator.provision import ProvisionedWorld, provision_world
from simulator.run import run_windows
from simulator.world import World
from tests.conftest import LiveRegistry

WINDOW = timedelta(minutes=15)


def stored_reports(registry: LiveRegistry) -> int:
    with registry.context.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Report)) or 0)


def facility_agent(provisioned: ProvisionedWorld, slug: str, root: Path, url: str) -> Agent:
    world = provisioned.world
    (facility,) = (f for f in world.facilities.values() if f.site.slug == slug)
    backend = SimulatedBackend(
        SimulatedAccelerator(c.chip_id, c.model.name, c.key, workload(c))
        for c in world.chips.values()
        if c.facility_id == facility.facility_id
    )
    spool = Spool(root / "spool")
    chain = ChainState.load(root / "chain.json", spool)
    token = provisioned.operator_tokens[f"operator:{facility.operator_id}"]
    return Agent(backend, spool, chain, RegistryClient(url, token))


def test_simulated_fleet_reports_are_all_acknowledged_and_stored(
    live_registry: LiveRegistry, small_fleet: World, tmp_path: Path
) -> None:
    provisioned = provision_world(small_fleet, live_registry.url, live_registry.admin_token)
    start = small_fleet.epoch + timedelta(hours=1)
    stats = run_windows(provisioned, start, 4, WINDOW, tmp_path)
    assert stats.pending == 0 and stats.rejected == 0
    assert stats.acknowledged == stats.collected == stored_reports(live_registry)


def test_outage_keeps_reports_spooled_until_the_registry_is_back(
    registry_settings: Settings, small_fleet: World, tmp_path: Path
) -> None:
    app = create_app(registry_settings)
    context = app.state.context
    with context.sessions() as session:
        admin = AccountService(session, utc_now).create_token("admin", Role.ADMIN).secret
        session.commit()
    server = BackgroundServer(app)
    port = server.port
    with server:
        provisioned = provision_world(small_fleet, server.url, admin)
    slug = small_fleet.facilities[1].site.slug
    agent = facility_agent(provisioned, slug, tmp_path / slug, f"http://127.0.0.1:{port}")
    start = small_fleet.epoch + timedelta(hours=1)

    # Registry down: two windows are signed and spooled, nothing is lost.
    collected = len(agent.collect(start, start + WINDOW))
    collected += len(agent.collect(start + WINDOW, start + 2 * WINDOW))
    stats = agent.flush()
    assert isinstance(stats.interrupted_by, TransportError)
    assert stats.acknowledged == 0
    assert len(agent.spool.pending()) == collected

    # A restarted registry process on the same database takes them all, once.
    restarted = create_app(registry_settings)
    with BackgroundServer(restarted, port=port):
        stats = agent.flush()
    assert stats.interrupted_by is None
    assert stats.acknowledged == collected
    assert agent.spool.pending() == []
    with restarted.state.context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Report)) == collected


def test_lost_acknowledgement_is_recovered_as_a_replay(
    live_registry: LiveRegistry, small_fleet: World, tmp_path: Path
) -> None:
    provisioned = provision_world(small_fleet, live_registry.url, live_registry.admin_token)
    slug = small_fleet.facilities[1].site.slug
    agent = facility_agent(provisioned, slug, tmp_path, live_registry.url)
    start = small_fleet.epoch + timedelta(hours=1)
    items = agent.collect(start, start + WINDOW)
    # The registry commits the batch, but the agent never hears back (say, a dropped
    # connection): the reports are still in its spool.
    assert agent.client is not None
    result = agent.client.post_batch([item.read() for item in items])
    assert result.accepted == len(items)
    assert len(agent.spool.pending()) == len(items)

    stats = agent.flush()
    assert stats.acknowledged == len(items) and stats.rejected == 0
    assert agent.spool.pending() == []
    assert stored_reports(live_registry) == len(items)


def test_a_clock_ahead_defers_reports_without_breaking_the_chain(
    live_registry: LiveRegistry, small_fleet: World, tmp_path: Path
) -> None:
    """Issue 9: a window ending after the registry's clock is refused ``window_in_future``; the
    agent keeps it (and the chip's later reports) spooled and sends them once it is due."""
    provisioned = provision_world(small_fleet, live_registry.url, live_registry.admin_token)
    slug = small_fleet.facilities[1].site.slug
    agent = facility_agent(provisioned, slug, tmp_path / slug, live_registry.url)
    start = small_fleet.epoch + timedelta(hours=1)
    registry_now = start + WINDOW / 2  # the host's clock is a window and a half ahead
    live_registry.context.clock = lambda: registry_now
    collected = len(agent.collect(start, start + WINDOW))
    collected += len(agent.collect(start + WINDOW, start + 2 * WINDOW))
    stats = agent.flush()
    assert (stats.acknowledged, stats.rejected, stats.deferred) == (0, 0, collected)
    assert len(agent.spool.pending(limit=10_000)) == collected and agent.spool.rejected() == []
    # Once the registry's clock has passed the windows, every report goes through in order.
    registry_now = start + 2 * WINDOW + timedelta(minutes=1)
    stats = agent.flush()
    assert (stats.acknowledged, stats.rejected, stats.deferred) == (collected, 0, 0)
    assert stored_reports(live_registry) == collected
