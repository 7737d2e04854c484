"""The independent channels end to end over real HTTP, on SQLite and PostgreSQL.

A small scenario world is declared in a live registry (facilities with PUE and non-IT load,
chips, transfer conditions, a declared cluster with budget and notifications, landmarks and
meters), its chip-signed reports and meter-signed readings are delivered in arrival order, and
landmarks measure round trips live (registry nonce, chip-signed answer through the agent,
landmark-signed measurement). The registry's verifier then finds a chip that is far from its
declared facility and a facility whose meter shows energy no declared chip explains, and an
honest world gives no finding at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.errors import AgentError
from registry.auth import Role
from simulator.catalog import H100, MI300X, PLACES, SITES
from simulator.provision import (
    deliver,
    honest_chips,
    measure_locations,
    provision_world,
)
from simulator.world import World
from tests.conftest import LiveRegistry
from tests.registry.factories import add_operator, ok

EPOCH = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
WINDOWS = 6
ASHBURN, FRANKFURT = SITES[0], SITES[4]
GHOST_CHIPS, GHOST_W = 40, 650.0


def small_world() -> World:
    """Two sites of two operators, 16 chips each: a declared training cluster on half of
    Ashburn, tensor-parallel inference on half of Frankfurt, the rest idle."""
    world = World(seed=3, epoch=EPOCH, window=WINDOW, windows=WINDOWS)
    us = world.add_facility(ASHBURN).facility_id
    de = world.add_facility(FRANKFURT).facility_id
    us_chips = world.add_chips(us, H100, 16)
    de_chips = world.add_chips(de, MI300X, 16, allowed=frozenset({"DE"}))
    world.training(us_chips[:8])
    world.declare_cluster(
        "ashburn-pretrain",
        us,
        us_chips[:8],
        budget_flop=3 * world.projected_flop(us_chips[:8]),
        notify=(1e25,),
    )
    world.inference_nodes(de_chips[:8])
    return world


def follow(registry: LiveRegistry) -> Any:
    """Let the registry's clock follow the simulation."""

    def set_time(at: datetime) -> None:
        registry.context.clock = lambda: at

    return set_time


def run(registry: LiveRegistry, world: World, measured: list[str]) -> list[dict[str, Any]]:
    """Simulate, declare, deliver, measure, verify; the registry's findings."""
    artifacts = world.simulate()
    set_time = follow(registry)
    provisioned = provision_world(world, registry.url, registry.admin_token, set_time=set_time)
    stats = deliver(provisioned, artifacts, set_time=set_time)
    assert stats.rejected == {}
    assert stats.reports_acknowledged == len(artifacts.deliveries)
    assert stats.readings_accepted == len(artifacts.readings) == 2 * WINDOWS
    end = EPOCH + WINDOWS * WINDOW
    set_time(end + timedelta(minutes=1))
    assert measure_locations(provisioned, measured) == len(measured) * 2 * 3
    inspector = registry.token(Role.INSPECTOR)
    as_of = end + timedelta(minutes=5)
    set_time(as_of)  # the registry judges no instant after its own clock
    with registry.client(inspector) as http:
        summary = ok(http.post("/v1/verifier/runs", json={"as_of": as_of.isoformat()}))
        assert summary["reports_examined"] == 32 * WINDOWS
        found: list[dict[str, Any]] = ok(http.get("/v1/findings"))["findings"]
    return found


def test_honest_world_raises_no_finding(live_registry: LiveRegistry) -> None:
    world = small_world()
    chips = honest_chips(world)
    assert run(live_registry, world, [*chips[:6], *chips[-6:]]) == []  # both sites measured


def test_distant_chip_and_ghost_chips_are_found(live_registry: LiveRegistry) -> None:
    world = small_world()
    us, de = 1, 2
    # A chip leaves Ashburn for Shenzhen from the start; its reports still claim Ashburn.
    smuggled = next(c for c in world.chips.values() if c.facility_id == us).chip_id
    world.move(smuggled, to=PLACES[0])
    # From window 2, unregistered chips draw power at Frankfurt.
    world.at(2, lambda _w: setattr(world.facilities[de], "ghost_w", GHOST_CHIPS * GHOST_W))
    honest = [c for c in honest_chips(world) if c != smuggled]
    found = run(live_registry, world, [smuggled, *honest[:6], *honest[-6:]])

    located = [f for f in found if f["kind"] == "location_mismatch"]
    assert [(f["subject_id"], f["facility_id"]) for f in located] == [(smuggled, us)]
    (mismatch,) = located
    assert mismatch["rule_id"] == "location.rtt_mismatch"
    verdicts = {c["verdict"] for c in mismatch["details"]["contradicting_landmarks"]}
    assert verdicts == {"too_slow"}  # answered from ~12,000 km away
    assert len(mismatch["evidence"]) >= 3  # the measurements' log entries

    ghosts = [f for f in found if f["kind"] == "ghost_chips"]
    assert [f["facility_id"] for f in ghosts] == [de]
    (ghost,) = ghosts
    assert ghost["window_start"] == (EPOCH + 2 * WINDOW).isoformat().replace("+00:00", "Z")
    assert ghost["details"]["windows_observed"] == WINDOWS - 2
    # Sized in chip-equivalents of 700 W: 40 ghosts at 650 W, seen through host overhead and PUE.
    assert 30 < ghost["details"]["max_chip_equivalents"] < 45
    # Nothing else about the honest chips or Ashburn's power.
    assert not [f for f in found if f["subject_id"] in honest]
    assert not [f for f in found if f["kind"] == "ghost_chips" and f["facility_id"] == us]


def test_world_needs_a_registry_without_facilities(live_registry: LiveRegistry) -> None:
    add_operator(live_registry, "Earlier Compute")  # takes facility id 1
    world = small_world()
    with pytest.raises(AgentError, match="without facilities"):
        provision_world(world, live_registry.url, live_registry.admin_token)
