"""Group commit: one writer thread per process sequences concurrent ingest batches in one
transaction.

Request threads prepare their batch (parse, verify and hash the log leaves, no lock) and hand it
to :meth:`IngestWriter.submit`. The writer takes everything queued at that moment (up to
``max_group_reports``), runs :meth:`IngestService.commit` over all of it under the log's
sequencing lock (chain checks, report rows, log entries with their indexes, chain heads),
commits once, and only then completes each request's future: acknowledged means committed and
sequenced. The Merkle tree, tiles and checkpoint follow within a second
(``registry.workers.integrator``). While one group commits, the next one queues up, so the
group size grows with the load and the per-commit cost (lock, fsync) is shared by every batch
in the group. The writer keeps the chips it has seen (:class:`SequencerState`) and reads them
again only when another writer appended since its own last commit.

Admission control: :meth:`IngestWriter.admitted` counts the reports a process holds (being
verified or waiting for the writer). Past ``max_pending_reports`` a new request is refused with
:class:`registry.errors.Overloaded` (HTTP 429 with ``Retry-After``) before any work is done,
instead of queueing without bound.

The writer has its own engine (one connection), so request threads holding pooled connections
can never starve it. It stops after ``idle_exit_s`` without work and restarts on demand.

On SQLite the writers of several worker processes queue on an ``flock`` of ``lock_path`` before
they begin: SQLite's own busy handler polls with sleeps of up to 100 ms, so a writer waiting on
it idles long after the lock is free, while a blocked ``flock`` wakes as soon as it is released.
(PostgreSQL's row lock on ``log_sequence`` already wakes its waiters at once.)
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from registry import metrics
from registry.errors import Overloaded
from registry.services.ingest import (
    Accepted,
    IngestService,
    PreparedBatch,
    Rejected,
)
from registry.services.log import LogSigner, TransparencyLog
from registry.services.sequencer_state import SequencerState

__all__ = ["IngestWriter", "file_lock", "sqlite_lock_path"]

Results = list[Accepted | Rejected]


@dataclass
class _Job:
    batch: PreparedBatch
    future: Future[Results] = field(default_factory=Future)


class IngestWriter:
    def __init__(
        self,
        engine: Engine,
        log_signer: LogSigner,
        clock: Callable[[], datetime],
        *,
        max_pending_reports: int,
        max_group_reports: int,
        retry_after_s: int = 1,
        idle_exit_s: float = 5.0,
        lock_path: Path | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self.log_signer = log_signer
        self.clock = clock
        self.max_pending_reports = max_pending_reports
        self.max_group_reports = max_group_reports
        self.retry_after_s = retry_after_s
        self.idle_exit_s = idle_exit_s
        self.lock_path = lock_path
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self.state = SequencerState()

    @property
    def pending_reports(self) -> int:
        return self._pending

    @contextmanager
    def admitted(self, reports: int) -> Iterator[None]:
        """Hold ``reports`` places in this process's ingest queue; 429 if it is full.

        A batch is always admitted into an empty queue, so no valid batch size is refused
        forever.
        """
        with self._lock:
            if self._pending and self._pending + reports > self.max_pending_reports:
                metrics.INGEST_OVERLOADED.inc()
                raise Overloaded(
                    f"ingest queue full ({self._pending} reports pending); retry later",
                    retry_after=self.retry_after_s,
                )
            self._pending += reports
        metrics.INGEST_PENDING.inc(reports)
        try:
            yield
        finally:
            with self._lock:
                self._pending -= reports
            metrics.INGEST_PENDING.dec(reports)

    def submit(self, batch: PreparedBatch) -> Results:
        """Queue a prepared batch and wait until its group is committed; its results."""
        job = _Job(batch)
        with self._lock:
            self._queue.put(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="chipreg-ingest-writer", daemon=True
                )
                self._thread.start()
        return job.future.result()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_exit_s)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        # Idle: close the connection too; the next group opens a new one.
                        self.engine.dispose()
                        return
                continue
            group = [first]
            size = first.batch.size
            while size < self.max_group_reports:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(job)
                size += job.batch.size
            self._commit(group)

    def _commit(self, group: list[_Job]) -> None:
        with file_lock(self.lock_path):
            self._commit_locked(group)

    def _commit_locked(self, group: list[_Job]) -> None:
        session: Session = self.sessions()
        try:
            log = TransparencyLog(session, self.log_signer)
            results = IngestService(session, log, self.clock).commit(
                [j.batch for j in group], self.state
            )
            started = time.perf_counter()
            session.commit()
            metrics.DB_COMMIT_SECONDS.observe(time.perf_counter() - started)
            self.state.committed()
        except Exception as exc:  # noqa: BLE001 (not a verdict: the error goes to every waiter)
            self.state.invalidate()
            session.rollback()
            for job in group:
                job.future.set_exception(exc)
            return
        finally:
            session.close()
        metrics.GROUP_COMMIT_BATCHES.observe(len(group))
        metrics.GROUP_COMMIT_REPORTS.observe(sum(j.batch.size for j in group))
        for job, batch_results in zip(group, results, strict=True):
            for r in batch_results:
                if isinstance(r, Accepted):
                    metrics.REPORTS_ACCEPTED.inc()
                else:
                    metrics.REPORTS_REJECTED.labels(r.code).inc()
            job.future.set_result(batch_results)


def sqlite_lock_path(engine: Engine) -> Path | None:
    """The file whose ``flock`` queues the SQLite database's writers (None: not a SQLite file).

    SQLite's own busy handler polls with sleeps of up to 100 ms; a blocked ``flock`` wakes as
    soon as the lock is released. Every writer of a hot path (the ingest writers, the
    integrator) takes it around its transaction.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        return None
    return Path(f"{database}.ingest-lock")


# How long a writer defers to the integrator's claim on the lock before it queues anyway
# (a claim left behind by a crashed integrator costs each group at most this once).
CLAIM_DEFER_S = 0.05


@contextmanager
def file_lock(path: Path | None, *, claim: bool = False, holder: str = "ingest") -> Iterator[None]:
    """Hold an exclusive ``flock`` of ``path`` (nothing if None); released by closing it.

    A blocked ``flock`` wakes its waiters in no order, so under load two ingest writers taking
    turns could keep the integrator waiting for seconds (and every checkpoint with it). The
    integrator therefore takes it with ``claim=True``: it first leaves a claim file beside the
    lock, and writers that see the claim wait (up to :data:`CLAIM_DEFER_S`) for it to go before
    they queue; the claim is removed once the integrator holds the lock.
    """
    if path is None:
        yield
        return
    claim_path = Path(f"{path}.claim")
    started = time.perf_counter()
    if claim:
        claim_path.touch(mode=0o600)
    else:
        deadline = started + CLAIM_DEFER_S
        while claim_path.exists() and time.perf_counter() < deadline:
            time.sleep(0.001)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if claim:
            claim_path.unlink(missing_ok=True)
        metrics.LOG_LOCK_WAIT_SECONDS.labels(holder).observe(time.perf_counter() - started)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
