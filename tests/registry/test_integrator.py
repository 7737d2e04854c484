"""The integrator (issue 15): its lease, its rounds and its exception guard, on both databases."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attestation import merkle
from registry.api.context import utc_now
from registry.db.engine import make_engine
from registry.repositories.log import LogRepository
from registry.services.log import LogAppender, TransparencyLog
from registry.workers.integrator import IntegratorLease, IntegratorWorker
from tests.conftest import LiveRegistry


def _append(registry: LiveRegistry, n: int) -> int:
    """Sequence ``n`` entries (not integrated); the sequenced size after them."""
    with registry.context.sessions() as s:
        first = LogAppender(s).append(
            "usage_report", [b"entry %d" % i for i in range(n)], utc_now()
        )
        s.commit()
    return first + n


def _head(registry: LiveRegistry) -> tuple[int, bytes]:
    with registry.context.sessions() as s:
        return TransparencyLog(s, registry.context.log_signer).head()


@pytest.fixture
def quiet(database_url: str, tmp_path: Path) -> Iterator[LiveRegistry]:
    """A migrated registry that is not served: no integrator runs but the test's."""
    from registry.api.app import create_app
    from registry.settings import Settings

    app = create_app(Settings(database_url=database_url, log_key_file=tmp_path / "log-key"))
    yield LiveRegistry("", app.state.context, "")
    app.state.context.engine.dispose()


def test_exactly_one_lease_holder_and_a_released_lease_is_taken_over(
    quiet: LiveRegistry,
) -> None:
    url = quiet.context.engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url), make_engine(url)]
    first, second = (IntegratorLease(e) for e in engines)
    try:
        assert first.acquire()
        assert first.acquire()  # held: taking it again is a no-op
        assert not second.acquire()
        first.release()
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.release()
        second.release()
        for e in engines:
            e.dispose()


def test_a_round_integrates_every_sequenced_entry(quiet: LiveRegistry) -> None:
    live_registry = quiet
    url = live_registry.context.engine.url.render_as_string(hide_password=False)
    worker = IntegratorWorker(make_engine(url), None, utc_now, batch_limit=7)
    try:
        sequenced = _append(live_registry, 20)
        before, after = worker.integrate_once()  # chunks of 7: 3 transactions
        assert after == sequenced and before <= sequenced - 20
        with live_registry.context.sessions() as s:
            leaves = LogRepository(s).leaf_hashes_between(0, sequenced)
            log = TransparencyLog(s, live_registry.context.log_signer)
            size, root = log.head()
            assert size == sequenced
            assert root == merkle.root_from_leaf_hashes(leaves)
            # Proofs come from the tiles the round wrote.
            proof = log.inclusion_proof(sequenced - 3, size)
        merkle.verify_inclusion(
            leaf_hash=leaves[sequenced - 3],
            index=sequenced - 3,
            tree_size=size,
            proof=proof,
            root=root,
        )
        assert worker.integrate_once() == (sequenced, sequenced)  # nothing new
    finally:
        worker.stop()


def test_a_failing_round_is_retried_and_the_worker_survives(tmp_path: Path) -> None:
    from registry.api.app import create_app
    from registry.settings import Settings

    database = tmp_path / "r.sqlite3"
    settings = Settings(
        database_url=f"sqlite:///{database}",
        log_key_file=tmp_path / "log-key",
        checkpoint_interval_s=0,
    )
    app = create_app(settings)
    registry = LiveRegistry("", app.state.context, "")
    worker = IntegratorWorker(
        make_engine(settings.database_url, sqlite_busy_timeout_ms=20),
        None,
        utc_now,
        interval_s=0.02,
    )
    sequenced = _append(registry, 5)
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        worker.start()
        time.sleep(0.3)  # rounds fail: the database is locked
        assert _head(registry)[0] < sequenced
        holder.execute("ROLLBACK")
        deadline = time.monotonic() + 30
        while _head(registry)[0] < sequenced:
            assert time.monotonic() < deadline, "the integrator never recovered"
            time.sleep(0.05)
    finally:
        holder.close()
        worker.stop()
        app.state.context.engine.dispose()
