"""A facility's declared host power model: declared with the facility, stored, logged in the
facility record, and handed to the ghost-chip rule (issue 14)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.replay import Replay
from registry.services.verification import VerificationService
from tests.registry.checks import refused
from tests.registry.factories import World, make_world, ok
from verifier.facts import HostPowerFact

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOSTS = {"gpus_per_host": 8, "idle_w": 1200.0, "per_gpu_slot_w": 60.0, "busy_w": 1500.0}


@pytest.fixture
def world(live_registry: Any) -> World:
    live_registry.context.clock = lambda: NOW
    return make_world(live_registry)


def _body(world: World, name: str, **extra: object) -> dict[str, Any]:
    return {
        "operator_id": world.operator_id,
        "name": name,
        "country": "US",
        "latitude": 32.45,
        "longitude": -99.73,
        "declared_power_kw": 5_000,
        "pue": 1.2,
        **extra,
    }


def _log(world: World) -> list[dict[str, Any]]:
    with world.registry.client() as http:
        entries: list[dict[str, Any]] = ok(
            http.get("/v1/log/entries", params={"start": 0, "end": 1000})
        )["entries"]
    return entries


def _newest_record(world: World) -> dict[str, Any]:
    with world.registry.client() as http:
        size = len(ok(http.get("/v1/log/entries", params={"start": 0, "end": 1000}))["entries"])
        [entry] = ok(http.get("/v1/log/entries", params={"start": size - 1, "end": size}))[
            "entries"
        ]
    assert entry["kind"] == "facility"
    record: dict[str, Any] = json.loads(base64.b64decode(entry["body"]))
    return record


def test_declared_host_power_is_stored_logged_and_judged_with(world: World) -> None:
    with world.registry.client(world.operator_token) as http:
        created = ok(
            http.post("/v1/facilities", json=_body(world, "Abilene 2", host_power=HOSTS)), 201
        )
        detail = ok(http.get(f"/v1/facilities/{created['id']}"))
    assert created["host_power"] == HOSTS
    assert detail["facility"]["host_power"] == HOSTS
    assert _newest_record(world)["host_power"] == HOSTS
    with world.registry.context.sessions() as session:
        facts = VerificationService(session, world.registry.context.clock).snapshot(NOW).facilities
    assert facts[created["id"]].host_power == HostPowerFact(8, 1200.0, 60.0, 1500.0)
    # Not declared: no model (the rule falls back to the policy's fixed share), and the
    # record has no host_power key at all, so records of older facilities read the same.
    assert facts[world.facility_id].host_power is None
    with world.registry.client(world.operator_token) as http:
        plain = ok(http.post("/v1/facilities", json=_body(world, "Abilene 3")), 201)
    assert plain["host_power"] is None
    assert "host_power" not in _newest_record(world)
    # The partner's audit reads the same models back from the log alone.
    replay = Replay()
    for i, entry in enumerate(_log(world)):
        replay.feed(i, entry["kind"], base64.b64decode(entry["body"]))
    assert not replay.problems
    assert {
        fid: None if f.record.host_power is None else f.record.host_power.to_dict()
        for fid, f in replay.facilities.items()
    } == {
        world.facility_id: None,
        created["id"]: HOSTS,
        plain["id"]: None,
    }


@pytest.mark.parametrize(
    "bad",
    [
        {**HOSTS, "gpus_per_host": 0},
        {**HOSTS, "idle_w": -1},
        {**HOSTS, "busy_w": "lots"},
        {**HOSTS, "per_gpu_slot_w": 1e9},
        {k: v for k, v in HOSTS.items() if k != "busy_w"},
        {**HOSTS, "fans_w": 100},
        [1200, 60, 1500],
    ],
)
def test_a_malformed_host_power_declaration_is_refused(world: World, bad: object) -> None:
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/facilities",
        (422, "invalid_request"),
        json=_body(world, "Abilene 4", host_power=bad),
    )
