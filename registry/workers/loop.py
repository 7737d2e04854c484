"""The loop every background worker runs in: a step per interval, guarded, with a clean stop.

A step that raises is logged with its traceback and retried after a pause that doubles with each
failure in a row (from the interval up to ``max_backoff_s``): a database outage or one bad input
slows a worker down but never ends it. The step owns its transactions (each opens
:func:`registry.db.engine.session_scope`), so a failed step leaves nothing half-written behind.
``stop()`` wakes a worker out of any pause and waits for the step in progress to end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["MAX_BACKOFF_S", "WorkerLoop", "backoff_pause"]

# The longest pause after repeated failing steps (the first waits one interval).
MAX_BACKOFF_S = 300.0


def backoff_pause(interval_s: float, failures: int, max_backoff_s: float = MAX_BACKOFF_S) -> float:
    """The pause after ``failures`` failing steps in a row: the interval, doubled per failure."""
    doubled: float = interval_s * 2.0 ** min(failures - 1, 16)
    return min(doubled, max(interval_s, max_backoff_s))


class WorkerLoop:
    """Runs ``step`` every ``interval_s`` seconds (measured from the start of each step).

    ``run()`` blocks (``chipreg verify --follow``); ``start()`` runs it on a daemon thread
    (``chipreg serve``); ``stop()`` ends either. ``on_error`` is told of each failure (for a
    test, a metric, or to let go of a lease); the loop logs it either way. ``first_wait_s``:
    a pause before the first step (0: the first step runs at once).
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        *,
        interval_s: float,
        logger: logging.Logger,
        max_backoff_s: float = MAX_BACKOFF_S,
        on_error: Callable[[BaseException], None] | None = None,
        first_wait_s: float = 0.0,
    ) -> None:
        self.name = name
        self.step = step
        self.interval_s = interval_s
        self.logger = logger
        self.max_backoff_s = max_backoff_s
        self.on_error = on_error
        self.first_wait_s = first_wait_s
        self.stop_event = threading.Event()
        self.failures = 0  # failing steps in a row
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        if self.first_wait_s > 0:
            self.stop_event.wait(self.first_wait_s)
        while not self.stop_event.is_set():
            began = time.monotonic()
            try:
                self.step()
            except Exception as exc:  # a failing step must never end the worker
                self.failures += 1
                pause = backoff_pause(self.interval_s, self.failures, self.max_backoff_s)
                self.logger.exception(
                    "%s: step failed (%d in a row); retrying in %.1f s",
                    self.name,
                    self.failures,
                    pause,
                )
                if self.on_error is not None:
                    self.on_error(exc)
                self.stop_event.wait(pause)
                continue
            self.failures = 0
            self.stop_event.wait(max(0.0, self.interval_s - (time.monotonic() - began)))

    def start(self) -> threading.Thread:
        """Run the loop on a daemon thread (once; a second call returns the same thread)."""
        if self._thread is None:
            self.stop_event.clear()
            self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
            self._thread.start()
        return self._thread

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the loop to end and wait (up to ``timeout_s``) for the step in progress."""
        self.stop_event.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
