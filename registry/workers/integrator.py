"""The integrator: folds sequenced log entries into the Merkle tree and publishes checkpoints.

Ingest (and every other append) only *sequences*: it gives entries their indexes and commits
them (``registry.services.log.LogAppender``); that is what a writer waits for before it
acknowledges. This worker does the rest, about every ``interval_s``: it integrates every entry
sequenced since its last round (:func:`registry.services.log.integrate`: leaf hashes from the
pool, compact range, root, C2SP tiles, tree size, in its own transaction), then has the
publisher sign a checkpoint of the new tree and collect the witnesses' cosignatures
(:meth:`registry.workers.checkpoints.CheckpointPublisher.publish_once`, in the same step: the
publisher runs no thread of its own beside an integrator). An acknowledged report is therefore
in a signed checkpoint about ``interval_s`` plus one round after its acknowledgement.

Every worker process runs one, and exactly one of them is active at a time: the holder of the
integrator lease, a lock the operating system or the database drops when its process dies
(SQLite: ``flock`` of ``<database>.integrator-lease``; PostgreSQL: a session advisory lock on a
connection the worker keeps). The others poll the lease each round and take over within a
round of the holder's death. The rounds run in the loop every worker shares
(:mod:`registry.workers.loop`): a round that fails (database down, a bug) is logged and retried
with backoff, and gives up the lease meanwhile; the worker never stops on an error. Each
transaction of a round is a :func:`registry.db.engine.session_scope`. On restart after a crash
the tree head is the last committed one, and the entries sequenced since are integrated by the
next round: the integrated tree only ever grows by whole, committed entries, so every
checkpoint signed before is a prefix of every later one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, Engine, text

from registry import metrics
from registry.db.engine import make_session_factory, session_scope
from registry.ingest.writer import file_lock, sqlite_lock_path
from registry.services.log import integrate
from registry.workers.checkpoints import CheckpointPublisher
from registry.workers.loop import WorkerLoop

__all__ = ["IntegratorLease", "IntegratorWorker"]

log = logging.getLogger("chipreg.integrator")

# pg_advisory_lock key of the integrator lease (any constant the registry uses for nothing else).
ADVISORY_KEY = 0x636869707265_6701
# The longest pause between failing rounds (checkpoints wait meanwhile).
MAX_BACKOFF_S = 30.0


class IntegratorLease:
    """Exactly one integrator at a time across processes; released when its process dies."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database
        self._path: Path | None = None
        self._fd: int | None = None
        self._conn: Connection | None = None
        self._memory = engine.dialect.name == "sqlite" and database in (None, "", ":memory:")
        if engine.dialect.name == "sqlite" and not self._memory:
            self._path = Path(f"{database}.integrator-lease")

    @property
    def held(self) -> bool:
        return self._memory or self._fd is not None or self._conn is not None

    def acquire(self) -> bool:
        """Take the lease if it is free (never waits); True if this process holds it."""
        if self._memory:
            return True
        if self._path is not None:
            if self._fd is None:
                fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return False
                self._fd = fd
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 (the lease's connection broke: the lock is gone)
                self.release()
        conn = self.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY})
            held = bool(got.scalar())
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not held:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        if self._conn is not None:
            try:
                # Closed for real, not returned to the pool (where it would keep the lock):
                # the session ends and PostgreSQL drops its advisory locks.
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                log.debug("closing the integrator lease connection failed", exc_info=True)
            self._conn = None

    def __enter__(self) -> IntegratorLease:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class IntegratorWorker:
    """Integrates and publishes every ``interval_s`` while this process holds the lease."""

    def __init__(
        self,
        engine: Engine,
        publisher: CheckpointPublisher | None,
        clock: Callable[[], datetime],
        *,
        interval_s: float = 0.5,
        batch_limit: int = 1_000_000,
    ) -> None:
        self.engine = engine
        self.sessions = make_session_factory(engine)
        self.publisher = publisher
        self.clock = clock
        self.interval_s = interval_s
        self.batch_limit = batch_limit
        self.lease = IntegratorLease(engine)
        self.write_lock = sqlite_lock_path(engine)
        self.loop = WorkerLoop(
            "chipreg-log-integrator",
            self.run_once,
            interval_s=interval_s,
            logger=log,
            max_backoff_s=MAX_BACKOFF_S,
            # Another process may do better: give the lease up, take it again later.
            on_error=lambda _exc: self.lease.release(),
            # The first round comes one interval after the start, as every later one: a
            # restarted process serves first, and integrates what was sequenced before then.
            first_wait_s=interval_s,
        )

    # -- one round -----------------------------------------------------------------------
    def integrate_once(self) -> tuple[int, int]:
        """Integrate everything sequenced so far (in chunks of ``batch_limit``); committed.

        Returns the integrated size before and after. Needs the lease (or a caller that knows
        no other integrator runs, such as a test or a maintenance command).
        """
        first = last = -1
        while True:
            with (
                file_lock(self.write_lock, claim=True, holder="integrator"),
                session_scope(self.sessions) as session,
            ):
                before, after = integrate(session, self.clock(), self.batch_limit)
            if first < 0:
                first = before
            last = after
            if after == before or after - before < self.batch_limit:
                break
        return first, last

    def run_once(self) -> bool:
        """One round if this process holds the lease: integrate, then publish. True if it ran."""
        if not self.lease.acquire():
            return False
        started = time.perf_counter()
        self.integrate_once()
        if self.publisher is not None:
            self.publisher.publish_once()
        metrics.INTEGRATOR_ROUND_SECONDS.observe(time.perf_counter() - started)
        return True

    # -- the background thread -----------------------------------------------------------
    def start(self) -> None:
        """Run a round every ``interval_s`` on a daemon thread (none when the interval is 0)."""
        if self.interval_s > 0:
            self.loop.start()

    def stop(self) -> None:
        """End the thread after the round in progress, give up the lease, close the engine."""
        self.loop.stop()
        self.lease.release()
        self.engine.dispose()
