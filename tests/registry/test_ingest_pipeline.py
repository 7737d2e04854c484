"""The ingest pipeline: back-pressure, group commits, key cache and metrics, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from attestation.dsse import Envelope
from registry.api.app import create_app
from registry.api.context import AppContext, utc_now
from registry.api.routes.reports import ingest_pipeline
from registry.auth import Principal, Role
from registry.db.models import Chip, LogEntry, Report
from registry.ingest.writer import IngestWriter
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.services.ingest import Accepted, IngestService, Rejected
from registry.services.log import TransparencyLog
from registry.services.sequencer_state import KeyCache
from registry.settings import Settings
from tests.conftest import LiveRegistry
from tests.registry.factories import World, make_world, ok


@dataclass
class Served:
    app: FastAPI
    world: World

    @property
    def context(self) -> AppContext:
        ctx: AppContext = self.app.state.context
        return ctx


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    settings = Settings(
        database_url=database_url,
        log_key_file=tmp_path / "log-key",
        log_origin="test.chipreg.local/log",
        ingest_max_pending_reports=4,
        ingest_retry_after_s=3,
    )
    app = create_app(settings)
    context: AppContext = app.state.context
    with context.sessions() as session:
        admin = AccountService(session, utc_now).create_token("test admin", Role.ADMIN).secret
        session.commit()
    with BackgroundServer(app) as server:
        world = make_world(LiveRegistry(url=server.url, context=context, admin_token=admin))
        for n in range(1, 9):
            world.enroll(f"NV-H100-{n:04d}")
        yield Served(app, world)
    context.engine.dispose()


def _counts(ctx: AppContext) -> tuple[int, int]:
    with ctx.sessions() as s:
        reports = s.scalar(select(func.count()).select_from(Report))
        entries = s.scalar(
            select(func.count()).select_from(LogEntry).where(LogEntry.kind == "usage_report")
        )
    return int(reports or 0), int(entries or 0)


def test_full_queue_is_refused_with_429_and_retry_after(served: Served) -> None:
    world = served.world
    chip = world.chips["NV-H100-0001"]
    assert ok(world.post([chip.report()]))["accepted"] == 1
    writer: IngestWriter = ingest_pipeline(served.app).writer
    pending = chip.report()
    with writer.admitted(4):
        r = world.post([pending])
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "3"
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json()["code"] == "overloaded"
        assert _counts(served.context) == (1, 1)
    # Nothing of the refused batch was kept: the same batch goes through once there is room.
    assert writer.pending_reports == 0
    assert ok(world.post([pending]))["results"][0]["seq"] == 2


def test_a_batch_larger_than_the_queue_is_admitted_into_an_empty_queue(served: Served) -> None:
    world = served.world
    chip = world.chips["NV-H100-0002"]
    body = ok(world.post([chip.report() for _ in range(6)]))
    assert body["accepted"] == 6


def test_concurrent_batches_are_all_committed_once_in_a_dense_log(served: Served) -> None:
    world = served.world
    # Room for every request at once, so the writer can group them.
    ingest_pipeline(served.app).writer.max_pending_reports = 10_000
    chains = {cid: [c.report() for _ in range(6)] for cid, c in world.chips.items()}

    def send(chip_id: str) -> list[tuple[int, int]]:
        got = []
        for i in range(0, 6, 2):
            body = ok(world.post(chains[chip_id][i : i + 2]))
            got += [(r["seq"], r["log_index"]) for r in body["results"]]
        return got

    with ThreadPoolExecutor(8) as pool:
        results = dict(zip(chains, pool.map(send, chains), strict=True))
    indices = sorted(i for got in results.values() for _, i in got)
    # Contiguous after the declarations already in the log: no gap, no duplicate.
    assert indices == list(range(indices[0], indices[0] + 48))
    assert all([s for s, _ in got] == [1, 2, 3, 4, 5, 6] for got in results.values())
    assert _counts(served.context) == (48, 48)
    with served.context.sessions() as s:
        assert {c.last_seq for c in s.scalars(select(Chip))} == {6}


def test_one_commit_chains_batches_of_the_same_chip_in_order(served: Served) -> None:
    world, ctx = served.world, served.context
    chip = world.chips["NV-H100-0003"]
    first, second = chip.report(), chip.report()
    caller = Principal(0, "test operator", Role.OPERATOR, operator_id=world.operator_id)
    keys = KeyCache()
    with ctx.sessions() as session:
        service = IngestService(session, TransparencyLog(session, ctx.log_signer), ctx.clock)
        batches = [
            service.prepare([e.to_dict()], caller, keys) for e in (first, second, second, first)
        ]
        results = service.commit(batches)
        session.commit()
    assert isinstance(results[0][0], Accepted) and isinstance(results[1][0], Accepted)
    assert (results[0][0].seq, results[1][0].seq) == (1, 2)
    assert results[1][0].log_index == results[0][0].log_index + 1
    replay, older = results[2][0], results[3][0]
    assert isinstance(replay, Rejected) and replay.code == "replayed_report"
    assert isinstance(older, Rejected) and older.code == "replayed_report"
    assert len(keys) == 1  # the key was read once and cached


def test_unknown_chip_is_not_cached_and_is_found_once_enrolled(served: Served) -> None:
    world, ctx = served.world, served.context
    caller = Principal(0, "test operator", Role.OPERATOR, operator_id=world.operator_id)
    keys = KeyCache()
    late = world.enroll("NV-H100-0100", install=False)
    envelope: Envelope = late.report()
    with ctx.sessions() as session:
        service = IngestService(session, TransparencyLog(session, ctx.log_signer), ctx.clock)
        [item] = service.prepare([{"not": "an envelope"}], caller, keys).items
        assert isinstance(item, Rejected) and item.code == "malformed_report"
        [item] = service.prepare([envelope.to_dict()], caller, keys).items
        assert not isinstance(item, Rejected)
        [[result]] = service.commit([service.prepare([envelope.to_dict()], caller, keys)])
    assert isinstance(result, Rejected) and result.code == "chip_not_installed"


def test_metrics_expose_ingest_and_log_figures(served: Served) -> None:
    world = served.world
    chip = world.chips["NV-H100-0004"]
    ok(world.post([chip.report(), chip.report()]))
    with world.registry.client() as http:
        text = http.get("/metrics").text
    for name in (
        "chipreg_reports_accepted_total",
        "chipreg_ingest_batch_reports_bucket",
        "chipreg_ingest_duration_seconds_bucket",
        "chipreg_ingest_verify_seconds_bucket",
        "chipreg_db_commit_seconds_bucket",
        "chipreg_group_commit_batches_bucket",
        "chipreg_ingest_pending_reports",
        "chipreg_checkpoint_age_seconds",
    ):
        assert name in text, name
    with served.context.sessions() as s:
        size = s.scalar(select(func.count()).select_from(LogEntry))
    assert f"chipreg_log_entries {float(size or 0)}" in text
