"""A small simulated world for the console's tests: the demo's fleet, scaled down (one planted
undeclared cluster, one chip gone dark), provisioned and reported over real HTTP, judged by the
verifier with the demo policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from attestation.note import NoteVerifier
from attestation.timefmt import format_time
from registry.auth import Role
from registry.services.log import TransparencyLog
from simulator.fleet import FleetSpec, build_fleet
from simulator.provision import ProvisionedWorld, provision_world
from simulator.run import run_windows
from tests.conftest import LiveRegistry
from tests.registry.logtools import wait_checkpoint

WINDOW = timedelta(minutes=15)
WINDOWS = 5
SPEC = FleetSpec(
    declared_cluster_chips=8,
    undeclared_cluster_chips=32,
    inference_chips_per_facility=4,
    idle_chips_per_facility=0,
    dark_chips=1,
)


@dataclass
class SimWorld:
    registry: LiveRegistry
    provisioned: ProvisionedWorld
    inspector: str
    partner: str
    hidden_operator: str  # the operator hiding the undeclared cluster
    hidden_facility_id: int
    other_operator: str
    undeclared_finding_id: int


def build(registry: LiveRegistry, spool: Path) -> SimWorld:
    fleet = build_fleet(SPEC)
    provisioned = provision_world(fleet, registry.url, registry.admin_token)
    start = fleet.epoch + timedelta(hours=1)
    run_windows(provisioned, start, WINDOWS, WINDOW, spool)
    inspector = registry.token(Role.INSPECTOR)
    with registry.client(inspector) as http:
        r = http.post(
            "/v1/verifier/runs",
            json={"policy": "demo", "as_of": format_time(start + WINDOWS * WINDOW)},
        )
        assert r.status_code == 200, r.text
        found = http.get("/v1/findings", params={"kind": "undeclared_cluster"}).json()
    [finding] = found["findings"]
    hidden_facility_id = finding["facility_id"]
    with registry.client(registry.admin_token) as http:
        facility = http.get(f"/v1/facilities/{hidden_facility_id}").json()["facility"]
    hidden_op = next(
        name for name, oid in provisioned.operator_ids.items() if oid == facility["operator_id"]
    )
    other_op = next(name for name in provisioned.operator_ids if name != hidden_op)
    return SimWorld(
        registry=registry,
        provisioned=provisioned,
        inspector=inspector,
        partner=registry.token(Role.PARTNER),
        hidden_operator=provisioned.operator_tokens[hidden_op],
        hidden_facility_id=hidden_facility_id,
        other_operator=provisioned.operator_tokens[other_op],
        undeclared_finding_id=finding["id"],
    )


def wait_published(registry: LiveRegistry) -> None:
    """Until the published checkpoint covers the whole log."""
    with registry.client() as http:
        vkey = http.get("/v1/log/key").json()["verifier_key"]
        with registry.context.sessions() as s:
            size, _ = TransparencyLog(s, registry.context.log_signer).head()
        wait_checkpoint(http, NoteVerifier.from_vkey(vkey), size)
