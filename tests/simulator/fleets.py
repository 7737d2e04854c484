"""A small deterministic simulated fleet (``SMALL``) and its session fixture, shared by the
simulator's and the agent's tests (their conftest files import the fixture)."""

from __future__ import annotations

import pytest

from simulator.fleet import FleetSpec, build_fleet
from simulator.world import World

SMALL = FleetSpec(
    seed=11,
    declared_cluster_chips=16,
    undeclared_cluster_chips=24,
    inference_chips_per_facility=6,
    idle_chips_per_facility=2,
    dark_chips=2,
    dark_after_window=2,
)


@pytest.fixture(scope="session")
def small_fleet() -> World:
    return build_fleet(SMALL)
