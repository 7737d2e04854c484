"""How ingest reads a chip's state, over real HTTP on SQLite and PostgreSQL: the first
installation time kept on the chip row (and backfilled by its migration), and the custody
history read once per group for reports delivered by a former custodian."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select, update

from attestation.report import GENESIS_DIGEST
from attestation.transfer import Transfer, sign_transfer
from registry.db.migrate import alembic_config, upgrade
from registry.db.models import Chip
from registry.repositories.chips import ChipRepository
from tests.conftest import LiveRegistry
from tests.registry.factories import T0, World, add_operator, make_world, ok, operator_key

INSTALLED = datetime(2026, 2, 1, tzinfo=UTC)  # World.install's installed_at
MIGRATION = "0013"


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    w = make_world(live_registry)
    w.enroll("NV-1")
    w.enroll("NV-2")
    return w


def first_installed(world: World) -> dict[str, datetime | None]:
    with world.registry.context.sessions() as s:
        return {c: at for c, at in s.execute(select(Chip.chip_id, Chip.first_installed_at))}


def results(world: World, envelopes: list, token: str | None = None) -> list[tuple[str, str]]:
    body = ok(world.post(envelopes, token))
    return [(r["chip_id"], r.get("code", r["status"])) for r in body["results"]]


def test_former_custodian_delivers_the_windows_it_held_the_chip_in(world: World) -> None:
    a, b = world.chips["NV-1"], world.chips["NV-2"]
    assert results(world, [a.report(), b.report()]) == [("NV-1", "accepted"), ("NV-2", "accepted")]
    receiver_id, receiver_token, receiver_facility = add_operator(world.registry, "Toronto")
    _, bystander_token, _ = add_operator(world.registry, "Bystander")
    moved_at = T0 + timedelta(hours=1)
    for chip_id in ("NV-1", "NV-2"):
        deal = Transfer(chip_id, world.facility_id, receiver_facility, moved_at)
        envelope = sign_transfer(deal, world.operator_key, operator_key("Toronto"))
        with world.registry.client(receiver_token) as http:
            ok(http.post("/v1/transfers", json=envelope.to_dict()), 201)
    # The transfer does not move the chips' first installation.
    assert first_installed(world) == {"NV-1": INSTALLED, "NV-2": INSTALLED}

    # One batch from the former custodian, several chips: windows that started while it held
    # them are taken; the one starting at the transfer is not its to deliver.
    a2, b2, a3, a4, a5 = a.report(), b.report(), a.report(), a.report(), a.report()
    assert a.window_end == moved_at + timedelta(minutes=15)  # a5 starts at the transfer
    assert results(world, [a2, b2, a3, a4, a5]) == [
        ("NV-1", "accepted"),
        ("NV-2", "accepted"),
        ("NV-1", "accepted"),
        ("NV-1", "accepted"),
        ("NV-1", "forbidden"),
    ]
    # The new custodian delivers it; an operator that never held the chips delivers nothing.
    assert results(world, [a5], receiver_token) == [("NV-1", "accepted")]
    b3 = b.report()
    assert results(world, [b3], bystander_token) == [("NV-2", "forbidden")]
    assert results(world, [b3], receiver_token) == [("NV-2", "accepted")]
    with world.registry.context.sessions() as s:
        heads = {c: seq for c, seq in s.execute(select(Chip.chip_id, Chip.last_seq))}
    assert heads == {"NV-1": 5, "NV-2": 3}
    assert receiver_id != world.operator_id


def test_window_before_the_first_installation_is_refused_from_the_chip_row(world: World) -> None:
    chip = world.chips["NV-1"]
    assert first_installed(world)["NV-1"] == INSTALLED
    # The chip row is what ingest reads: a later first installation moves the bound.
    bound = T0 + timedelta(minutes=15)
    with world.registry.context.sessions() as s:
        s.execute(update(Chip).where(Chip.chip_id == "NV-1").values(first_installed_at=bound))
        s.commit()
    assert results(world, [chip.report()]) == [("NV-1", "window_before_installation")]
    # The same seq 1, its window starting at the bound, is taken.
    chip.seq, chip.prev, chip.window_end = 0, GENESIS_DIGEST, bound
    assert results(world, [chip.report()]) == [("NV-1", "accepted")]


def test_migration_backfills_the_first_installation(world: World) -> None:
    engine = world.registry.context.engine
    config = alembic_config()
    before = ScriptDirectory.from_config(config).get_revision(MIGRATION).down_revision
    assert isinstance(before, str)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, before)
    upgrade(engine)
    assert first_installed(world) == {"NV-1": INSTALLED, "NV-2": INSTALLED}
    world.enroll("NV-3", install=False)
    assert first_installed(world)["NV-3"] is None


def test_ingest_states_read_what_the_orm_reads(world: World) -> None:
    a = world.chips["NV-1"]
    assert results(world, [a.report(), a.report()]) == [("NV-1", "accepted")] * 2
    at = datetime(2026, 3, 2, 1, 2, 3, 456789, tzinfo=UTC)
    with world.registry.context.sessions() as s:
        s.execute(update(Chip).where(Chip.chip_id == "NV-2").values(revoked_at=at))
        s.execute(update(Chip).where(Chip.chip_id == "NV-1").values(decommissioned_at=at))
        s.commit()
    world.enroll("NV-3", install=False)
    with world.registry.context.sessions() as s:
        states = ChipRepository(s).ingest_states(["NV-1", "NV-2", "NV-3", "NV-4"])
        chips = {c.chip_id: c for c in s.scalars(select(Chip))}
    assert set(states) == {"NV-1", "NV-2", "NV-3"}
    for chip_id, state in states.items():
        chip = chips[chip_id]
        assert (
            state.last_seq,
            state.last_digest,
            state.last_window_end,
            state.last_log_index,
            state.decommissioned_at,
            state.revoked_at,
            state.in_service_from,
        ) == (
            chip.last_seq,
            chip.last_digest,
            chip.last_window_end,
            chip.last_log_index,
            chip.decommissioned_at,
            chip.revoked_at,
            chip.first_installed_at,
        )
        for value in (state.last_window_end, state.decommissioned_at, state.in_service_from):
            assert value is None or value.tzinfo is UTC
    assert states["NV-1"].last_window_end == T0 + timedelta(minutes=30)
    assert states["NV-1"].decommissioned_at == at
    assert states["NV-2"].revoked_at == at
    assert states["NV-1"].operator_id == world.operator_id
    assert states["NV-3"].operator_id is None
    assert states["NV-3"].in_service_from is None
