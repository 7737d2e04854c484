"""Background workers (registry/workers/) on SQLite and PostgreSQL: each step owns its
transaction, a failing step is rolled back, logged and retried without ending the worker, and
``stop()`` ends a worker cleanly.

Failures are real failed commits: a session factory on the registry's own engine whose chosen
writing commits raise (as a commit does when the database goes away), so what a failed step
wrote is really rolled back by the database and really absent afterwards.
"""

from __future__ import annotations

import ast
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from attestation.logentries import VERIFIER_RUN
from registry.db.engine import make_engine, make_session_factory, session_scope
from registry.db.models import (
    Finding,
    LogCheckpoint,
    LogEntry,
    LogState,
    VerifierProgress,
    WebhookDelivery,
    WebhookSubscription,
)
from registry.services.log import integrate
from registry.settings import Settings
from registry.workers.checkpoints import CheckpointPublisher
from registry.workers.integrator import IntegratorWorker
from registry.workers.loop import WorkerLoop, backoff_pause
from registry.workers.verifier import VerifierWorker
from registry.workers.webhooks import DeliveryStats, WebhookDeliverer
from tests.registry.factories import World, make_world, ok
from tests.registry.test_lifecycle import SECRET, Receiver, run, silent_chip_world
from verifier.policy import load_builtin_policy

FOLLOW_AT = datetime(2026, 3, 1, 2, 5, tzinfo=UTC)  # the window ending 02:00 has settled


class CommitFailed(RuntimeError):
    """What a commit raises when the database goes away mid-step (here: on purpose)."""


class FailingCommits:
    """Sessions on ``engine`` whose ``fail_at``-th writing commits (1-based) raise.

    A commit is "writing" if its session flushed, executed an INSERT/UPDATE/DELETE, or still
    holds pending changes; read-only commits are neither counted nor failed.
    """

    def __init__(self, engine: Engine, *fail_at: int) -> None:
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        self.fail_at = set(fail_at)
        self.writing_commits = 0
        self.failed = 0
        event.listen(self.sessions, "after_flush", self._wrote)
        event.listen(self.sessions, "do_orm_execute", self._executed)
        event.listen(self.sessions, "before_commit", self._before_commit)

    @staticmethod
    def _wrote(session: Session, _context: Any) -> None:
        session.info["wrote"] = True

    @staticmethod
    def _executed(state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            state.session.info["wrote"] = True

    def _before_commit(self, session: Session) -> None:
        wrote = session.info.pop("wrote", False)
        if not (wrote or session.new or session.dirty or session.deleted):
            return
        self.writing_commits += 1
        if self.writing_commits in self.fail_at:
            self.failed += 1
            raise CommitFailed(f"writing commit {self.writing_commits} failed (test)")


@pytest.fixture
def registry_settings(registry_settings: Settings) -> Settings:
    # No background integrator (nor publisher) in the app: the tests below run their own.
    return registry_settings.model_copy(update={"checkpoint_interval_s": 0})


@pytest.fixture
def world(live_registry: Any) -> World:
    return make_world(live_registry)


def count(world: World, stmt: Any) -> int:
    with world.registry.context.sessions() as s:
        return int(s.scalar(stmt) or 0)


def wait_until(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` (a generous bound: the machine is busy; not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- the session scope and the loop ---------------------------------------------------------


def test_session_scope_commits_on_success_and_rolls_back_on_error(world: World) -> None:
    sessions = world.registry.context.sessions
    now = datetime(2026, 3, 1, tzinfo=UTC)

    def subscription(name: str) -> WebhookSubscription:
        return WebhookSubscription(
            name=name,
            url="http://127.0.0.1:9/",
            secret=SECRET,
            min_severity="low",
            active=True,
            created_at=now,
        )

    with session_scope(sessions) as session:
        session.add(subscription("kept"))
    with pytest.raises(CommitFailed), session_scope(sessions) as session:
        session.add(subscription("flushed then failed"))
        session.flush()  # written to the database inside the transaction
        raise CommitFailed("a later part of the step failed")
    # A commit that itself fails is rolled back too.
    failing = FailingCommits(world.registry.context.engine, 1)
    with pytest.raises(CommitFailed), session_scope(failing.sessions) as session:
        session.add(subscription("commit failed"))
    with sessions() as s:
        assert list(s.scalars(select(WebhookSubscription.name))) == ["kept"]
    assert failing.failed == 1


def test_worker_loop_survives_a_failing_step_and_stops_cleanly(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A step that writes, then fails, is rolled back; the loop goes on; stop() ends it."""
    sessions = world.registry.context.sessions
    steps = []
    errors: list[BaseException] = []

    def step() -> None:
        steps.append(len(steps) + 1)
        with session_scope(sessions) as session:
            session.add(
                WebhookSubscription(
                    name=f"step-{steps[-1]}",
                    url="http://127.0.0.1:9/",
                    secret=SECRET,
                    min_severity="low",
                    active=True,
                    created_at=datetime.now(UTC),
                )
            )
            session.flush()
            if steps[-1] == 1:
                raise CommitFailed("the first step fails after writing")
        if steps[-1] == 3:
            loop.stop()  # from inside the loop's own thread: no join, the loop just ends

    loop = WorkerLoop(
        "test-worker",
        step,
        interval_s=0.01,
        logger=logging.getLogger("tests.workers"),
        on_error=errors.append,
    )
    with caplog.at_level(logging.ERROR, logger="tests.workers"):
        thread = loop.start()
        thread.join(timeout=60)
    assert not thread.is_alive() and not loop.running
    assert steps == [1, 2, 3] and loop.failures == 0
    assert [type(e) for e in errors] == [CommitFailed]
    assert "test-worker: step failed (1 in a row)" in caplog.text
    with sessions() as s:
        names = sorted(s.scalars(select(WebhookSubscription.name)))
    assert names == ["step-2", "step-3"]  # step 1's row was rolled back


def test_stop_wakes_a_worker_out_of_its_backoff() -> None:
    """A worker pausing after failures (here for up to 300 s) stops at once when asked."""
    failed = threading.Event()

    def step() -> None:
        failed.set()
        raise CommitFailed("always")

    loop = WorkerLoop("test-backoff", step, interval_s=300, logger=logging.getLogger("tests"))
    thread = loop.start()
    assert failed.wait(timeout=60)
    loop.stop(timeout_s=60)
    assert not thread.is_alive() and loop.failures == 1


def test_backoff_doubles_from_the_interval_up_to_its_cap() -> None:
    assert [backoff_pause(1.0, n, 10.0) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 10, 10]
    assert backoff_pause(30.0, 3, 10.0) == 30.0  # never below the interval itself


# --- the checkpoint publisher ---------------------------------------------------------------


def test_publisher_survives_a_failing_round(world: World) -> None:
    reg = world.registry
    engine = reg.context.engine
    size = count(world, select(func.count()).select_from(LogEntry))
    assert size > 0
    # The publisher signs the integrated tree: integrate what the world sequenced first.
    with session_scope(reg.context.sessions) as session:
        assert integrate(session, reg.context.clock()) == (0, size)
    failing = FailingCommits(engine, 1)
    publisher = CheckpointPublisher(
        failing.sessions, reg.context.log_signer, reg.context.clock, interval_s=0.01
    )
    # The round's write (checkpoint row) fails at commit: nothing of it stays.
    with pytest.raises(CommitFailed):
        publisher.publish_once()
    assert count(world, select(func.count()).select_from(LogCheckpoint)) == 0

    # The next rounds, on the publisher's own thread, publish; stop() ends the thread.
    failing.fail_at = {2}  # and one more failing round while running
    publisher.start()
    try:
        wait_until(
            lambda: count(world, select(func.max(LogCheckpoint.size))) == size,
            f"a checkpoint of size {size}",
        )
    finally:
        publisher.stop()
    assert not publisher.loop.running and failing.failed == 2
    with reg.context.sessions() as s:
        sizes = list(s.scalars(select(LogCheckpoint.size).order_by(LogCheckpoint.size)))
    assert sizes == [size]  # published once, after one failed round in the loop


# --- the log integrator ---------------------------------------------------------------------


def test_integrator_survives_a_failing_round(world: World) -> None:
    """A round whose integration commit fails leaves the tree as it was; the loop goes on,
    integrates everything and has the publisher sign it; stop() ends the thread."""
    reg = world.registry
    size = count(world, select(func.count()).select_from(LogEntry))
    assert size > 0
    url = reg.context.engine.url.render_as_string(hide_password=False)
    worker = IntegratorWorker(make_engine(url), None, reg.context.clock, interval_s=0.01)
    failing = FailingCommits(worker.engine, 1)
    worker.sessions = failing.sessions
    try:
        with pytest.raises(CommitFailed):
            worker.run_once()
        assert count(world, select(LogState.size)) == 0  # the failed round left nothing
        worker.publisher = CheckpointPublisher(
            reg.context.sessions, reg.context.log_signer, reg.context.clock
        )
        failing.fail_at = {2}  # and one more failing round while running
        worker.start()
        wait_until(
            lambda: count(world, select(func.max(LogCheckpoint.size))) == size,
            f"a checkpoint of size {size}",
        )
    finally:
        worker.stop()
    assert not worker.loop.running and failing.failed == 2
    assert count(world, select(LogState.size)) == size


# --- the webhook deliverer ------------------------------------------------------------------


@pytest.fixture
def accepting_receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=0)
    r.thread.start()
    yield r
    r.server.shutdown()


def outbox(world: World) -> list[WebhookDelivery]:
    with world.registry.context.sessions() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_deliverer_survives_a_failing_claim_and_a_failing_outcome(
    world: World, accepting_receiver: Receiver
) -> None:
    reg = world.registry
    silent_chip_world(world)
    with reg.client(reg.admin_token) as http:
        ok(
            http.post(
                "/v1/webhooks",
                json={"name": "agency", "url": accepting_receiver.url, "secret": SECRET},
            ),
            201,
        )
    created = run(world)["new_findings"]
    assert created >= 2
    due_at = {d.id: d.next_attempt_at for d in outbox(world)}
    now = [max(due_at.values()) + timedelta(seconds=1)]
    # Writing commits: 1 the claim (fails), 2 the claim again, 3 the first outcome (fails).
    failing = FailingCommits(reg.context.engine, 1, 3)
    deliverer = WebhookDeliverer(
        failing.sessions, reg.context.settings, lambda: now[0], httpx.Client()
    )

    # A claim that fails leases nothing and posts nothing.
    with pytest.raises(CommitFailed):
        deliverer.deliver_due()
    assert {d.id: d.next_attempt_at for d in outbox(world)} == due_at
    assert accepting_receiver.received == []

    # An outcome that cannot be recorded is skipped; the round delivers the others.
    stats = deliverer.deliver_due()
    assert stats == DeliveryStats(delivered=created - 1, unrecorded=1)
    lost = [d for d in outbox(world) if d.delivered_at is None]
    assert len(lost) == 1 and lost[0].attempts == 0 and lost[0].last_error is None
    assert len(accepting_receiver.received) == created

    # Once its lease ends the row is due again and delivered, under the same webhook-id.
    assert deliverer.deliver_due() == DeliveryStats()
    now[0] += timedelta(seconds=reg.context.settings.webhook_timeout_s * 2 + 2)
    assert deliverer.deliver_due() == DeliveryStats(delivered=1)
    assert all(d.delivered_at is not None and d.attempts == 1 for d in outbox(world))
    ids = [h["webhook-id"] for h, _ in accepting_receiver.received]
    assert len(ids) == created + 1 and ids.count(f"msg_{lost[0].id}") == 2


# --- the continuous verifier ----------------------------------------------------------------


def verifier_runs(world: World) -> int:
    return count(
        world, select(func.count()).select_from(LogEntry).where(LogEntry.kind == VERIFIER_RUN)
    )


def test_verifier_step_that_fails_at_commit_leaves_nothing_and_the_worker_goes_on(
    world: World,
) -> None:
    reg = world.registry
    silent_chip_world(world)
    failing = FailingCommits(reg.context.engine, 1)
    settings = reg.context.settings.model_copy(update={"verifier_interval_s": 0.01})
    judged: list[datetime] = []

    def on_step(runs: Any) -> None:
        judged.extend(r.as_of for r in runs)
        if judged:
            worker.stop()

    worker = VerifierWorker(
        failing.sessions,
        settings,
        load_builtin_policy("demo"),
        lambda: FOLLOW_AT,
        on_step=on_step,
    )
    # The step judged the window, logged its run, stored findings and moved its progress, all
    # in one transaction whose commit fails: none of it stays.
    with pytest.raises(CommitFailed):
        worker.step()
    assert verifier_runs(world) == 0
    assert count(world, select(func.count()).select_from(Finding)) == 0
    assert count(world, select(func.count()).select_from(VerifierProgress)) == 0

    # On its loop the worker retries the same window, once, and then stops cleanly.
    failing.fail_at = {2}  # one more failure while running
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive() and failing.failed == 2
    assert judged == [datetime(2026, 3, 1, 2, 0, tzinfo=UTC)]
    assert verifier_runs(world) == 1
    assert {f.subject_id for f in findings_rows(world)} >= {"NV-1", "NV-2"}


def findings_rows(world: World) -> list[Finding]:
    with world.registry.context.sessions() as s:
        return list(s.scalars(select(Finding)))


def test_verify_follow_runs_the_worker_until_interrupted(world: World) -> None:
    """``chipreg verify --follow``: the worker in the foreground, stopped by Ctrl-C (exit 0)."""
    url = world.registry.context.engine.url.render_as_string(hide_password=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "registry.cli.main", "verify", "--follow", "--policy", "demo"],
        env={**os.environ, "CHIPREG_DATABASE_URL": url, "CHIPREG_VERIFIER_INTERVAL_S": "0.2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # ends when the process does: no timing involved
            lines.append(line)
            assert len(lines) < 200, "".join(lines)  # failing steps log; a judged one prints
            if line.startswith("verifier policy demo"):  # a step judged a window
                process.send_signal(signal.SIGINT)
                break
        assert process.wait(timeout=60) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert lines[0].startswith("chipreg verify: following with policy demo")
    assert verifier_runs(world) >= 1


# --- who owns a transaction -----------------------------------------------------------------


def test_services_and_repositories_never_end_a_transaction() -> None:
    """Only a scope (request, worker step, CLI command) commits or rolls back."""
    root = Path(__file__).resolve().parents[2] / "registry"
    found = []
    for package in ("services", "repositories"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("commit", "rollback")
                ):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert found == []
