"""Landmarks and meters over real HTTP: registration, challenges, signed measurements and
readings, every rejection code, and the log entries they leave."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from attestation.dsse import sign_envelope
from attestation.landmark import LandmarkMeasurement, sign_challenge, sign_measurement
from attestation.meter import MeterReading, sign_reading
from registry.auth import Role
from tests.registry.factories import World, key, make_world, ok

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LANDMARK_KEY = key("landmark:fra")
METER_KEY = key("meter:abilene")


@pytest.fixture
def world(live_registry: Any) -> World:
    live_registry.context.clock = lambda: NOW
    return make_world(live_registry)


def register(world: World) -> tuple[int, int]:
    with world.registry.client(world.registry.admin_token) as http:
        lm = ok(
            http.post(
                "/v1/landmarks",
                json={
                    "name": "Frankfurt landmark",
                    "public_key": LANDMARK_KEY.public_key.to_b64(),
                    "latitude": 50.11,
                    "longitude": 8.68,
                },
            ),
            201,
        )
        meter = ok(
            http.post(
                "/v1/meters",
                json={
                    "name": "Abilene main meter",
                    "facility_id": world.facility_id,
                    "public_key": METER_KEY.public_key.to_b64(),
                },
            ),
            201,
        )
    return lm["id"], meter["id"]


def problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


def measure(world: World, landmark_id: int, chip_id: str, token: str, **kw: Any) -> Any:
    with world.registry.client(token) as http:
        challenge = ok(
            http.post(f"/v1/landmarks/{landmark_id}/challenges", json={"chip_id": chip_id}), 201
        )
    chip_key = key(f"chip:{chip_id}")
    fields: dict[str, Any] = {
        "landmark_id": landmark_id,
        "chip_id": chip_id,
        "nonce": challenge["nonce"],
        "chip_signature": sign_challenge(landmark_id, chip_id, challenge["nonce"], chip_key),
        "rtt_ms": 4.2,
        "measured_at": NOW,
    }
    fields.update(kw)
    return sign_measurement(LandmarkMeasurement(**fields), LANDMARK_KEY)


def post(world: World, path: str, token: str, envelope: Any) -> Any:
    with world.registry.client(token) as http:
        return http.post(path, json=envelope.to_dict())


def test_measurement_is_verified_stored_and_logged(world: World) -> None:
    reg = world.registry
    world.enroll("NV-1")
    landmark_id, _ = register(world)
    token = reg.token(Role.LANDMARK)
    env = measure(world, landmark_id, "NV-1", token)
    done = ok(post(world, "/v1/landmark-measurements", token, env), 201)
    with reg.client(reg.admin_token) as http:
        entry = ok(
            http.get(
                "/v1/log/entries", params={"start": done["log_index"], "end": done["log_index"] + 1}
            )
        )
    assert entry["entries"][0]["kind"] == "landmark_measurement"
    assert base64.b64decode(entry["entries"][0]["body"]) == env.to_json()
    # The same measurement again: the nonce is spent.
    problem(post(world, "/v1/landmark-measurements", token, env), 409, "replayed_measurement")


def test_measurement_rejections(world: World) -> None:
    reg = world.registry
    world.enroll("NV-1")
    world.enroll("NV-2")
    landmark_id, _ = register(world)
    token = reg.token(Role.LANDMARK)
    other = key("someone else")
    # Landmark signature by another key.
    env = measure(world, landmark_id, "NV-1", token)
    forged = sign_envelope(env.payload, env.payload_type, other)
    problem(post(world, "/v1/landmark-measurements", token, forged), 422, "bad_signature")
    # The chip's answer signed by another key.
    bad_answer = measure(
        world,
        landmark_id,
        "NV-1",
        token,
        chip_signature=sign_challenge(landmark_id, "NV-1", "00" * 32, other),
    )
    problem(post(world, "/v1/landmark-measurements", token, bad_answer), 422, "bad_chip_signature")
    # A nonce the registry never issued.
    fake = sign_measurement(
        LandmarkMeasurement(
            landmark_id,
            "NV-1",
            "ab" * 32,
            sign_challenge(landmark_id, "NV-1", "ab" * 32, key("chip:NV-1")),
            3.0,
            NOW,
        ),
        LANDMARK_KEY,
    )
    problem(post(world, "/v1/landmark-measurements", token, fake), 404, "unknown_nonce")
    # A nonce issued for NV-2 used for NV-1.
    with reg.client(token) as http:
        ch = ok(http.post(f"/v1/landmarks/{landmark_id}/challenges", json={"chip_id": "NV-2"}), 201)
    swapped = sign_measurement(
        LandmarkMeasurement(
            landmark_id,
            "NV-1",
            ch["nonce"],
            sign_challenge(landmark_id, "NV-1", ch["nonce"], key("chip:NV-1")),
            3.0,
            NOW,
        ),
        LANDMARK_KEY,
    )
    problem(post(world, "/v1/landmark-measurements", token, swapped), 422, "nonce_mismatch")
    # Stale: answered after the nonce expired.
    env = measure(world, landmark_id, "NV-1", token)
    reg.context.clock = lambda: NOW + timedelta(minutes=10)
    problem(post(world, "/v1/landmark-measurements", token, env), 409, "stale_nonce")
    reg.context.clock = lambda: NOW
    # Unknown landmark, malformed body, wrong role.
    with reg.client(token) as http:
        problem(
            http.post("/v1/landmarks/999/challenges", json={"chip_id": "NV-1"}),
            404,
            "unknown_landmark",
        )
        problem(
            http.post(f"/v1/landmarks/{landmark_id}/challenges", json={"chip_id": "NV-9"}),
            404,
            "unknown_chip",
        )
        problem(
            http.post("/v1/landmark-measurements", json={"payload": "x"}),
            400,
            "malformed_measurement",
        )
    with reg.client(world.operator_token) as http:
        problem(
            http.post(f"/v1/landmarks/{landmark_id}/challenges", json={"chip_id": "NV-1"}),
            403,
            "role_not_allowed",
        )
    # Nothing half-written: no rejected measurement reached the log.
    with reg.client(reg.admin_token) as http:
        entries = ok(http.get("/v1/log/entries", params={"start": 0, "end": 1000}))["entries"]
    kinds = [e["kind"] for e in entries]
    assert "landmark" in kinds and "landmark_measurement" not in kinds


def reading(meter_id: int, facility_id: int, start: datetime, energy: float = 5e10) -> MeterReading:
    return MeterReading(meter_id, facility_id, start, start + timedelta(minutes=15), energy)


def test_meter_readings(world: World) -> None:
    reg = world.registry
    _, meter_id = register(world)
    token = reg.token(Role.METER)
    t0 = NOW - timedelta(hours=1)
    first = sign_reading(reading(meter_id, world.facility_id, t0), METER_KEY)
    done = ok(post(world, "/v1/meter-readings", token, first), 201)
    assert done["log_index"] == 5  # after vendor, operator, facility, landmark, meter records
    problem(post(world, "/v1/meter-readings", token, first), 409, "replayed_reading")
    other = sign_reading(reading(meter_id, world.facility_id, t0, 6e10), METER_KEY)
    problem(post(world, "/v1/meter-readings", token, other), 409, "reading_conflict")
    early = sign_reading(reading(meter_id, world.facility_id, t0 - timedelta(minutes=5)), METER_KEY)
    problem(post(world, "/v1/meter-readings", token, early), 409, "window_out_of_order")
    wrong = sign_reading(
        reading(meter_id, world.facility_id + 1, t0 + timedelta(minutes=15)), METER_KEY
    )
    problem(post(world, "/v1/meter-readings", token, wrong), 422, "facility_mismatch")
    future = sign_reading(reading(meter_id, world.facility_id, NOW + timedelta(hours=1)), METER_KEY)
    problem(post(world, "/v1/meter-readings", token, future), 422, "window_in_future")
    forged = sign_reading(
        reading(meter_id, world.facility_id, t0 + timedelta(minutes=15)), key("x")
    )
    problem(post(world, "/v1/meter-readings", token, forged), 422, "bad_signature")
    unknown = sign_reading(reading(meter_id + 5, world.facility_id, t0), METER_KEY)
    problem(post(world, "/v1/meter-readings", token, unknown), 404, "unknown_meter")
    second = sign_reading(
        reading(meter_id, world.facility_id, t0 + timedelta(minutes=15)), METER_KEY
    )
    assert ok(post(world, "/v1/meter-readings", token, second), 201)["log_index"] == 6
    with reg.client(world.operator_token) as http:
        problem(http.post("/v1/meter-readings", json=second.to_dict()), 403, "role_not_allowed")


def test_registration_rules(world: World) -> None:
    reg = world.registry
    register(world)
    with reg.client(reg.admin_token) as http:
        body = {
            "name": "again",
            "public_key": LANDMARK_KEY.public_key.to_b64(),
            "latitude": 1,
            "longitude": 2,
        }
        problem(http.post("/v1/landmarks", json=body), 409, "duplicate_key")
        body = {"name": "m2", "facility_id": 999, "public_key": key("m2").public_key.to_b64()}
        problem(http.post("/v1/meters", json=body), 404, "unknown_facility")
        body = {"name": "m3", "facility_id": world.facility_id, "public_key": "A" * 43 + "="}
        problem(http.post("/v1/meters", json=body), 422, "bad_public_key")
        assert [lm["name"] for lm in ok(http.get("/v1/landmarks"))] == ["Frankfurt landmark"]
    with reg.client(world.operator_token) as http:
        body = {
            "name": "x",
            "public_key": key("x").public_key.to_b64(),
            "latitude": 1,
            "longitude": 2,
        }
        problem(http.post("/v1/landmarks", json=body), 403, "role_not_allowed")
