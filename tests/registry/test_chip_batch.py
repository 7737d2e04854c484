"""Bulk enrollment (``POST /v1/chips/batch``) over real HTTP, on SQLite and PostgreSQL: a batch
enrolls and logs every chip in request order, exactly as one-by-one enrollment would; one bad
item refuses the whole batch with a per-item report and writes nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from attestation.certs import create_vendor_root, issue_chip_certificate
from attestation.logentries import ENROLLMENT
from attestation.records import EnrollmentRecord
from registry.auth import Role
from registry.db.models import Chip, LogEntry
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from tests.registry.factories import (
    VALID_FROM,
    VALID_TO,
    SimChip,
    World,
    key,
    make_world,
    ok,
    signed,
)


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    return make_world(live_registry)


def item(world: World, chip_id: str, chip_key_label: str | None = None) -> dict[str, object]:
    pem = world.certificate(chip_id, key(chip_key_label or f"chip:{chip_id}"))
    return {"certificate_pem": pem.decode(), "peak_tflops_bf16": 989.0, "tdp_watts": 700.0}


def test_a_batch_enrolls_and_logs_every_chip_in_order(world: World) -> None:
    chip_ids = [f"GPU-B{i:04d}" for i in range(120)]
    with world.registry.client(world.vendor_token) as http:
        answer = ok(
            http.post(
                "/v1/chips/batch",
                json={"vendor_id": world.vendor_id, "chips": [item(world, c) for c in chip_ids]},
            ),
            201,
        )
    assert answer["enrolled"] == 120 and answer["chip_ids"] == chip_ids
    first = answer["first_log_index"]
    with world.registry.context.sessions() as s:
        entries = list(
            s.scalars(
                select(LogEntry)
                .where(LogEntry.index >= first, LogEntry.index < first + 120)
                .order_by(LogEntry.index)
            )
        )
        chips = {c.chip_id: c for c in s.scalars(select(Chip))}
    assert [e.kind for e in entries] == [ENROLLMENT] * 120
    records = [EnrollmentRecord.from_json(e.body) for e in entries]
    assert [r.chip_id for r in records] == chip_ids
    assert records[7].public_key == key("chip:GPU-B0007").public_key.to_b64()
    assert chips["GPU-B0007"].last_seq == 0 and chips["GPU-B0007"].model == "H100-SXM5-80GB"

    # A batch-enrolled chip is like any other: installed, it reports and is accepted.
    chip = SimChip("GPU-B0007", key("chip:GPU-B0007"))
    with world.registry.client(world.operator_token) as http:
        ok(
            http.post(
                "/v1/installations",
                json=signed(
                    "installation",
                    {
                        "chip_id": chip.chip_id,
                        "facility_id": world.facility_id,
                        "installed_at": "2026-02-01T00:00:00Z",
                    },
                    world.operator_key,
                ),
            ),
            201,
        )
    assert ok(world.post([chip.report()]))["accepted"] == 1


def test_one_bad_item_refuses_the_batch_with_a_report_per_item(world: World) -> None:
    with world.registry.client(world.vendor_token) as http:
        ok(
            http.post("/v1/chips", json={"vendor_id": world.vendor_id, **item(world, "GPU-OLD")}),
            201,
        )
    amd_key = key("vendor:AMD")
    amd_root = create_vendor_root("AMD", amd_key, not_before=VALID_FROM, not_after=VALID_TO)
    foreign = issue_chip_certificate(
        root_pem=amd_root,
        root_key=amd_key,
        chip_id="GPU-AMD",
        model="MI300X",
        chip_key=key("chip:GPU-AMD").public_key,
        not_before=VALID_FROM,
        not_after=VALID_TO,
    )
    chips = [
        item(world, "GPU-N0"),  # 0: fine
        {**item(world, "GPU-N1"), "certificate_pem": "not a certificate"},  # 1
        item(world, "GPU-OLD"),  # 2: enrolled before
        item(world, "GPU-N0"),  # 3: twice in the batch
        item(world, "GPU-N4", chip_key_label="chip:GPU-N0"),  # 4: item 0's key
        {**item(world, "GPU-N5"), "certificate_pem": foreign.decode()},  # 5: other vendor
        item(world, "GPU-N6", chip_key_label="chip:GPU-OLD"),  # 6: an enrolled chip's key
        item(world, "GPU-N7"),  # 7: fine
    ]
    body = refused(
        world.registry,
        world.vendor_token,
        "POST",
        "/v1/chips/batch",
        (422, "batch_rejected"),
        json={"vendor_id": world.vendor_id, "chips": chips},
    )
    assert "6 of 8 chips refused; nothing was enrolled" in body["detail"]
    report = [(e["index"], e["chip_id"], e["status"], e["code"]) for e in body["errors"]]
    assert report == [
        (1, None, 422, "bad_certificate"),
        (2, "GPU-OLD", 409, "already_exists"),
        (3, "GPU-N0", 409, "duplicate_in_batch"),
        (4, "GPU-N4", 409, "duplicate_key"),
        (5, None, 422, "bad_certificate"),
        (6, "GPU-N6", 409, "duplicate_key"),
    ]
    assert "item 0" in body["errors"][2]["detail"]


def test_batch_refusals_before_any_item_is_looked_at(world: World) -> None:
    reg = world.registry
    other_vendor = reg.token(Role.VENDOR, vendor_id=world.vendor_id)
    batch = {"vendor_id": world.vendor_id, "chips": [item(world, "GPU-X")]}
    refused(
        reg, world.operator_token, "POST", "/v1/chips/batch", (403, "role_not_allowed"), json=batch
    )
    refused(
        reg,
        other_vendor,
        "POST",
        "/v1/chips/batch",
        (403, "not_your_vendor"),
        json={**batch, "vendor_id": world.vendor_id + 1},
    )
    refused(
        reg,
        world.vendor_token,
        "POST",
        "/v1/chips/batch",
        (422, "invalid_request"),
        json={"vendor_id": world.vendor_id, "chips": []},
    )
    too_many = {"vendor_id": world.vendor_id, "chips": [batch["chips"][0]] * 10_001}  # type: ignore[index]
    refused(
        reg, world.vendor_token, "POST", "/v1/chips/batch", (422, "invalid_request"), json=too_many
    )
    assert json.dumps(batch)  # the batch itself was fine: it enrolls
    with reg.client(world.vendor_token) as http:
        ok(http.post("/v1/chips/batch", json=batch), 201)
