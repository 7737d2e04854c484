"""The sequencer's chain heads in memory (issue 15), on both databases.

Each worker process's writer keeps the chips it has seen between groups and trusts them only
while nothing else appended to the log since its own last commit (the sequenced size is the
generation). Two writers on one database stand for two worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from attestation.dsse import Envelope
from registry.auth import Principal, Role
from registry.db.engine import make_engine
from registry.ingest.writer import IngestWriter, sqlite_lock_path
from registry.services.ingest import Accepted, IngestService, Rejected
from registry.services.log import TransparencyLog
from registry.services.sequencer_state import KeyCache
from tests.conftest import LiveRegistry
from tests.registry.factories import World, make_world, ok


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    w = make_world(live_registry)
    w.enroll("NV-1")
    return w


@pytest.fixture
def writers(live_registry: LiveRegistry) -> Iterator[tuple[IngestWriter, IngestWriter]]:
    ctx = live_registry.context
    url = ctx.engine.url.render_as_string(hide_password=False)
    made = []
    for _ in range(2):
        engine = make_engine(url)
        made.append(
            IngestWriter(
                engine,
                ctx.log_signer,
                ctx.clock,
                max_pending_reports=1000,
                max_group_reports=1000,
                lock_path=sqlite_lock_path(engine),
            )
        )
    yield made[0], made[1]
    for w in made:
        w.engine.dispose()


def _submit(
    registry: LiveRegistry, world: World, writer: IngestWriter, envelopes: list[Envelope]
) -> list[Accepted | Rejected]:
    ctx = registry.context
    caller = Principal(0, "test operator", Role.OPERATOR, operator_id=world.operator_id)
    with ctx.sessions() as session:
        service = IngestService(session, TransparencyLog(session, ctx.log_signer), ctx.clock)
        prepared = service.prepare([e.to_dict() for e in envelopes], caller, KeyCache())
        session.commit()
    return writer.submit(prepared)


def _codes(results: list[Accepted | Rejected]) -> list[str]:
    return ["accepted" if isinstance(r, Accepted) else r.code for r in results]


def test_a_writer_catches_up_with_the_heads_another_writer_moved(
    live_registry: LiveRegistry, world: World, writers: tuple[IngestWriter, IngestWriter]
) -> None:
    """Without the generation check (or with a wrong catch-up), writer A would accept report 2
    a second time from its stale head (seq 1) after writer B accepted it: a duplicate."""
    a, b = writers
    chip = world.chips["NV-1"]
    r1, r2, r3, r4 = chip.report(), chip.report(), chip.report(), chip.report()
    assert _codes(_submit(live_registry, world, a, [r1])) == ["accepted"]
    assert a.state.heads["NV-1"][0] == 1  # kept in memory after the commit
    assert _codes(_submit(live_registry, world, b, [r2])) == ["accepted"]
    # b appended only reports: a reads the heads they moved from b's report rows.
    assert _codes(_submit(live_registry, world, a, [r2])) == ["replayed_report"]
    assert (a.state.catch_ups, a.state.reloads) == (1, 0)
    assert _codes(_submit(live_registry, world, a, [r3])) == ["accepted"]
    # Nothing else appended since a's last commit: its heads served the group as they were.
    assert (a.state.catch_ups, a.state.reloads) == (1, 0)
    assert a.state.heads["NV-1"][0] == 3
    # b's kept head (seq 2, before a's r3) is caught up too: r3 is a replay, r4 the next.
    assert _codes(_submit(live_registry, world, b, [r3, r4])) == ["replayed_report", "accepted"]
    assert b.state.catch_ups == 1


def test_a_revocation_between_groups_reaches_the_cached_chip(
    live_registry: LiveRegistry, world: World, writers: tuple[IngestWriter, IngestWriter]
) -> None:
    a, _ = writers
    chip = world.chips["NV-1"]
    assert _codes(_submit(live_registry, world, a, [chip.report()])) == ["accepted"]
    with live_registry.client(world.vendor_token) as http:
        ok(http.post("/v1/chips/NV-1/revoke", json={"reason": "key leaked"}))
    # A chip_status record is not a report: the kept chips are dropped and read again.
    assert _codes(_submit(live_registry, world, a, [chip.report()])) == ["chip_revoked"]
    assert (a.state.catch_ups, a.state.reloads) == (0, 1)


def test_a_failed_commit_leaves_no_head_in_memory(
    live_registry: LiveRegistry, world: World, writers: tuple[IngestWriter, IngestWriter]
) -> None:
    """A group whose commit fails moves no head in memory: the same report, sent again, is
    accepted (not judged a replay of the report that was never stored)."""
    a, _ = writers
    chip = world.chips["NV-1"]
    assert _codes(_submit(live_registry, world, a, [chip.report()])) == ["accepted"]
    report = chip.report()

    def fail(_session: Session) -> None:
        raise RuntimeError("the disk is full")

    event.listen(a.sessions, "before_commit", fail)
    with pytest.raises(RuntimeError, match="disk is full"):
        _submit(live_registry, world, a, [report])
    event.remove(a.sessions, "before_commit", fail)
    assert a.state.heads.get("NV-1", (1,))[0] == 1  # dropped (invalidated), never moved
    assert _codes(_submit(live_registry, world, a, [report])) == ["accepted"]
    assert a.state.heads["NV-1"][0] == 2
