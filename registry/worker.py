"""Continuous verification: judge each reporting window as it closes, then deliver webhooks.

Runs as ``chipreg verify --follow`` or inside ``chipreg serve --verifier`` (a background thread).
Each step is its own transaction; progress lives in ``verifier_progress``, so a restarted worker
resumes where it stopped. A step that fails is logged and retried with a growing pause: no input
and no database hiccup may stop continuous detection for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from registry.services.verification import VerificationRun, VerificationService
from registry.services.webhooks import DeliveryStats, WebhookDeliverer
from registry.settings import Settings
from registry.workers.rollup import roll_up_totals
from verifier.policy import Policy

__all__ = ["VerifierWorker"]

logger = logging.getLogger(__name__)
# The longest pause after repeated failing steps (the first waits one interval).
MAX_BACKOFF_S = 300.0


class VerifierWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        policy: Policy,
        clock: Callable[[], datetime],
        http: httpx.Client | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.deliverer = WebhookDeliverer(sessions, settings, clock, http or httpx.Client())
        self.stop_event = threading.Event()

    def step(self) -> tuple[list[VerificationRun], DeliveryStats]:
        """Judge every window closed since the last step, commit, then deliver what is due."""
        with self.sessions() as session:
            runs = VerificationService(session, self.clock).follow(
                self.policy,
                window=timedelta(seconds=self.settings.verifier_window_s),
                settle=timedelta(seconds=self.settings.verifier_settle_s),
            )
            session.commit()
        self.roll_up()
        return runs, self.deliverer.deliver_due()

    def roll_up(self) -> None:
        """Keep the read side's running totals (the console's overview and facility pages)
        close to the log, off the ingest path: one roll-up step per verifier step."""
        roll_up_totals(self.sessions, self.clock)

    def run_forever(self, on_step: Callable[[list[VerificationRun]], None] | None = None) -> None:
        interval = self.settings.verifier_interval_s
        failures = 0
        while not self.stop_event.is_set():
            try:
                runs, _ = self.step()
                if on_step is not None:
                    on_step(runs)
            except Exception:  # a failing step must never kill continuous verification
                failures += 1
                pause = min(interval * 2 ** min(failures - 1, 16), max(interval, MAX_BACKOFF_S))
                logger.exception(
                    "verifier step failed (%d in a row); retrying in %.0f s", failures, pause
                )
                self.stop_event.wait(pause)
                continue
            failures = 0
            self.stop_event.wait(interval)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="chipreg-verifier", daemon=True)
        thread.start()
        return thread
