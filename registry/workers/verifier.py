"""Continuous verification: judge each reporting window as it closes, then deliver webhooks.

Runs as ``chipreg verify --follow`` (in the foreground) or inside ``chipreg serve --verifier``
(a background thread). Each step judges in one transaction (the runs, their log records, new
findings and their outbox rows, and the progress in ``verifier_progress`` commit together), so
a restarted worker resumes where it stopped and a failed step leaves nothing behind; the
deliveries that follow take their own transactions (:mod:`registry.workers.webhooks`). A step
that fails is logged and retried with a growing pause (:mod:`registry.workers.loop`): no input
and no database hiccup may stop continuous detection for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from registry.db.engine import session_scope
from registry.services.verification import VerificationRun, VerificationService
from registry.settings import Settings
from registry.workers.loop import WorkerLoop
from registry.workers.rollup import roll_up_totals
from registry.workers.webhooks import DeliveryStats, WebhookDeliverer
from verifier.policy import Policy

__all__ = ["VerifierWorker"]

logger = logging.getLogger(__name__)


class VerifierWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        policy: Policy,
        clock: Callable[[], datetime],
        http: httpx.Client | None = None,
        *,
        on_step: Callable[[list[VerificationRun]], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.on_step = on_step
        self.deliverer = WebhookDeliverer(sessions, settings, clock, http or httpx.Client())
        self.loop = WorkerLoop(
            "chipreg-verifier",
            self._guarded_step,
            interval_s=settings.verifier_interval_s,
            logger=logger,
        )

    def step(self) -> tuple[list[VerificationRun], DeliveryStats]:
        """Judge every window closed since the last step, commit, then deliver what is due."""
        with session_scope(self.sessions) as session:
            runs = VerificationService(session, self.clock).follow(
                self.policy,
                window=timedelta(seconds=self.settings.verifier_window_s),
                settle=timedelta(seconds=self.settings.verifier_settle_s),
            )
        self.roll_up()
        return runs, self.deliverer.deliver_due()

    def roll_up(self) -> None:
        """Keep the read side's running totals (the console's overview and facility pages)
        close to the log, off the ingest path: one roll-up step per verifier step."""
        roll_up_totals(self.sessions, self.clock)

    def _guarded_step(self) -> None:
        runs, _ = self.step()
        if self.on_step is not None:
            self.on_step(runs)

    def run_forever(self) -> None:
        """Judge and deliver every ``CHIPREG_VERIFIER_INTERVAL_S`` until :meth:`stop`."""
        self.loop.run()

    def start(self) -> None:
        """Run on a daemon thread (``chipreg serve --verifier``)."""
        self.loop.start()

    def stop(self) -> None:
        """End the loop after the step in progress (from any thread, the loop's own too)."""
        self.loop.stop()
