"""Run a provisioned fleet for a number of windows: one agent per facility, real HTTP.

Each facility gets the same stack a real deployment runs (SimulatedBackend instead of NVML):
backend -> Agent -> Spool + ChainState -> RegistryClient with the operator's token. The
planted ``gone_dark`` chips are silenced from their window on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.agent import Agent
from agents.backends.simulated import SimulatedAccelerator, SimulatedBackend
from agents.chain import ChainState
from agents.client import RegistryClient
from agents.errors import AgentError
from agents.spool import Spool
from simulator.provision import ProvisionedFleet

__all__ = ["RunStats", "run_windows", "window_bounds"]


@dataclass(frozen=True)
class RunStats:
    """Totals of a simulated run. ``pending`` reports are still spooled (not acknowledged)."""

    windows: int
    collected: int
    acknowledged: int
    rejected: int
    pending: int
    interruptions: int
    elapsed_s: float


def window_bounds(
    start: datetime, windows: int, window: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    """``(start, end)`` of each consecutive window."""
    for i in range(windows):
        yield start + i * window, start + (i + 1) * window


def run_windows(
    provisioned: ProvisionedFleet,
    start: datetime,
    windows: int,
    window: timedelta,
    spool_root: Path,
    *,
    durable: bool = False,
    batch_size: int = 500,
    first_window: int = 0,
) -> RunStats:
    """Collect and flush ``windows`` consecutive windows for every facility of the fleet.

    ``durable=False`` (the default here) skips fsync in spool and chain files: the simulator's
    spools are throwaway; real agents always run durable. ``first_window`` is the index of
    the first window in the scenario, so a run continued in several calls (same ``spool_root``)
    silences the ``gone_dark`` chips at the right window.
    """
    if start.tzinfo is None:
        raise AgentError("start must be timezone-aware")
    start = start.astimezone(UTC)
    fleet = provisioned.fleet
    dark = fleet.dark_chip_ids()
    began = time.perf_counter()
    collected = acked = rejected = interruptions = 0
    with ExitStack() as stack:
        agents: list[tuple[Agent, SimulatedBackend]] = []
        for slug, facility in fleet.facilities.items():
            backend = SimulatedBackend(
                SimulatedAccelerator(c.chip_id, c.model.name, c.key, c.workload)
                for c in fleet.chips_at(slug)
            )
            spool = Spool(Path(spool_root) / slug / "spool", durable=durable)
            chain = ChainState.load(Path(spool_root) / slug / "chain.json", spool, durable=durable)
            client = stack.enter_context(
                RegistryClient(provisioned.base_url, provisioned.operator_tokens[facility.operator])
            )
            agents.append((Agent(backend, spool, chain, client, batch_size=batch_size), backend))
        for index, (w_start, w_end) in enumerate(window_bounds(start, windows, window)):
            if first_window + index >= fleet.spec.dark_after_window:
                for _, backend in agents:
                    backend.silence(dark)
            for agent, _ in agents:
                collected += len(agent.collect(w_start, w_end))
                stats = agent.flush()
                acked += stats.acknowledged
                rejected += stats.rejected
                interruptions += stats.interrupted_by is not None
        pending = sum(len(agent.spool.pending()) for agent, _ in agents)
    return RunStats(
        windows=windows,
        collected=collected,
        acknowledged=acked,
        rejected=rejected,
        pending=pending,
        interruptions=interruptions,
        elapsed_s=time.perf_counter() - began,
    )
