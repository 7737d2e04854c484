"""Run a provisioned world through real agents for a number of windows: one agent per facility.

Each facility gets the same stack a real deployment runs (SimulatedBackend instead of NVML):
backend -> Agent -> Spool + ChainState -> RegistryClient with the operator's token, each chip's
telemetry its :func:`~simulator.fleet.workload`. Chips planted to go silent (ground truth under
``chip.silent``) are silenced from their window on.
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
from simulator.fleet import silenced_from, workload
from simulator.provision import ProvisionedWorld

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
    provisioned: ProvisionedWorld,
    start: datetime,
    windows: int,
    window: timedelta,
    spool_root: Path,
    *,
    durable: bool = False,
    batch_size: int = 500,
    first_window: int = 0,
) -> RunStats:
    """Collect and flush ``windows`` consecutive windows for every facility of the world.

    ``durable=False`` (the default here) skips fsync in spool and chain files: the simulator's
    spools are throwaway; real agents always run durable. ``first_window`` is the index of
    the first window in the scenario, so a run continued in several calls (same ``spool_root``)
    silences the planted silent chips at the right window.
    """
    if start.tzinfo is None:
        raise AgentError("start must be timezone-aware")
    start = start.astimezone(UTC)
    world = provisioned.world
    silenced = silenced_from(world)
    began = time.perf_counter()
    collected = acked = rejected = interruptions = 0
    with ExitStack() as stack:
        agents: list[tuple[Agent, SimulatedBackend]] = []
        for fid, facility in world.facilities.items():
            backend = SimulatedBackend(
                SimulatedAccelerator(c.chip_id, c.model.name, c.key, workload(c))
                for c in world.chips.values()
                if c.facility_id == fid
            )
            home = Path(spool_root) / facility.site.slug
            spool = Spool(home / "spool", durable=durable)
            chain = ChainState.load(home / "chain.json", spool, durable=durable)
            token = provisioned.operator_tokens[f"operator:{facility.operator_id}"]
            client = stack.enter_context(RegistryClient(provisioned.base_url, token))
            agents.append((Agent(backend, spool, chain, client, batch_size=batch_size), backend))
        for index, (w_start, w_end) in enumerate(window_bounds(start, windows, window)):
            now_silent = [c for c, w in silenced.items() if w <= first_window + index]
            for _, backend in agents:
                backend.silence(now_silent)
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
