"""The agent's facility claim against the real registry over real HTTP: an honest claim is
stored with each report and raises nothing; a claim of a facility where the chip is not
installed is found by the verifier (rule ``report.wrong_facility``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agents.agent import Agent
from agents.backends.simulated import SimulatedAccelerator, SimulatedBackend, Workload
from agents.chain import ChainState
from agents.client import RegistryClient
from agents.spool import Spool
from registry.auth import Role
from registry.db.models import Report
from tests.conftest import LiveRegistry
from tests.registry.factories import T0, World, key, make_world, ok

WINDOW = timedelta(minutes=15)


def agent_for(world: World, chip_ids: list[str], root: Path, facility_id: int) -> Agent:
    backend = SimulatedBackend(
        SimulatedAccelerator(c, "H100-SXM5-80GB", key(f"chip:{c}"), Workload(0.5, 350.0))
        for c in chip_ids
    )
    spool = Spool(root / "spool", durable=False)
    chain = ChainState.load(root / "chain.json", spool, durable=False)
    client = RegistryClient(world.registry.url, world.operator_token)
    return Agent(backend, spool, chain, client, facility_id=facility_id)


def second_facility(world: World) -> int:
    with world.registry.client(world.operator_token) as http:
        site = ok(
            http.post(
                "/v1/facilities",
                json={
                    "operator_id": world.operator_id,
                    "name": "Abilene site 2",
                    "country": "US",
                    "latitude": 32.5,
                    "longitude": -99.7,
                    "declared_power_kw": 5_000,
                },
            ),
            201,
        )
    return int(site["id"])


def findings(registry: LiveRegistry, as_of: datetime) -> list[dict[str, Any]]:
    inspector = registry.token(Role.INSPECTOR)
    with registry.client(inspector) as http:
        ok(http.post("/v1/verifier/runs", json={"as_of": as_of.isoformat()}))
        found: list[dict[str, Any]] = ok(http.get("/v1/findings"))["findings"]
    return found


def test_facility_claims_are_stored_and_a_false_one_is_found(
    live_registry: LiveRegistry, tmp_path: Path
) -> None:
    world = make_world(live_registry)
    elsewhere = second_facility(world)
    honest_ids, lying_ids = ["NV-1", "NV-2"], ["NV-3"]
    for chip_id in honest_ids + lying_ids:
        world.enroll(chip_id)  # all installed at world.facility_id
    honest = agent_for(world, honest_ids, tmp_path / "honest", world.facility_id)
    lying = agent_for(world, lying_ids, tmp_path / "lying", elsewhere)
    start = T0 + timedelta(hours=1)
    for i in range(2):
        for agent in (honest, lying):
            agent.collect(start + i * WINDOW, start + (i + 1) * WINDOW)
            stats = agent.flush()
            assert (stats.acknowledged, stats.rejected) == (len(agent.backend.discover()), 0)
    with live_registry.context.sessions() as session:
        claims = dict(session.execute(select(Report.chip_id, Report.facility_claim)).all())
    assert claims == {"NV-1": world.facility_id, "NV-2": world.facility_id, "NV-3": elsewhere}

    found = findings(live_registry, start + 2 * WINDOW)
    wrong = [f for f in found if f["kind"] == "wrong_facility"]
    assert [(f["subject_id"], f["facility_id"]) for f in wrong] == [("NV-3", elsewhere)]
    assert len(wrong[0]["evidence"]) == 2  # both lying reports, by log index
    # The honest chips raise no finding about where they are.
    assert not [f for f in found if f["subject_id"] in honest_ids]
