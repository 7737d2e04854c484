"""Honest fleets from public GPU cluster traces: real job schedules, simulated physics.

A trace (``tests/data/traces/``, format in ``loadtests/traces/make_samples.py``) lists runs of
real jobs: how many GPUs, when each attempt started and ended (a job that crashed and was
retried has several), and what share of each GPU it held. :func:`trace_world` turns a slice of
it into a :class:`~simulator.world.World`: one facility whose 8-GPU hosts are
allocated to runs as they start (first fit, whole hosts first for runs of 8 or more), and per
15-minute window, every chip's state follows its run:

* *duty*: the fraction of the window the run covers (a run that starts, ends or crash-loops
  inside the window leaves its GPUs idle the rest of it);
* *utilization* while running: drawn per job, 30-95% (the traces publish no per-GPU
  utilization for these samples; Jeon et al., ATC'19, report most Philly GPUs well below
  full use), times the GPU share for shared GPUs;
* *traffic* between a run's GPUs: all-to-all within a host, a ring across hosts, at a per-job
  communication intensity (20-95% of what the links carry in the busy time, see
  :mod:`simulator.physics`), so communication-heavy jobs are in the fleet;
* *power*: board power from utilization, hosts from the facility's true host model (declared,
  a few % off, as an honest operator would).

Traces record what ran, not what was planted: the world is honest, so every finding on it is a
false alarm. Nothing here knows the verifier's rules.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from attestation.report import LinkKind
from simulator.catalog import H100, SITES, ChipModel, Site
from simulator.physics import IB_GBYTES_PER_S, PAIR_GBYTES_PER_S
from simulator.world import World

__all__ = ["TraceRun", "TraceWorld", "load_trace", "trace_world"]

_PER_HOST = 8


@dataclass(frozen=True, slots=True)
class TraceRun:
    """One run (attempt) of a job: ``gpus`` GPUs from ``start_s`` to ``end_s`` (seconds from
    the slice start), holding ``gpu_share`` of each."""

    job: str
    gpus: int
    start_s: int
    end_s: int
    gpu_share: float = 1.0


@dataclass(frozen=True, slots=True)
class TraceWorld:
    """A world built from a trace, and what of the trace it holds."""

    world: World
    runs_placed: int
    runs_skipped: int
    """Runs that found no free GPUs (the facility is sized from the slice's peak demand, so
    only runs whose GPUs are still held by runs ending in the same window)."""


def load_trace(path: Path) -> list[TraceRun]:
    """Read a committed trace sample (``job,gpus,start_s,end_s,gpu_share``)."""
    with path.open(newline="") as f:
        return [
            TraceRun(
                row["job"],
                int(row["gpus"]),
                int(row["start_s"]),
                int(row["end_s"]),
                float(row["gpu_share"]),
            )
            for row in csv.DictReader(f)
        ]


def _peak_gpus(runs: Sequence[TraceRun], start: int, end: int, step: int) -> int:
    peak = 0
    for t in range(start, end, step):
        peak = max(peak, sum(r.gpus for r in runs if r.start_s < t + step and r.end_s > t))
    return peak


def trace_world(
    runs: Sequence[TraceRun],
    *,
    seed: int,
    windows: int,
    first_window: int = 0,
    max_gpus: int | None = None,
    model: ChipModel = H100,
    site: Site = SITES[1],
    epoch: datetime = datetime(2026, 3, 2, tzinfo=UTC),
    window: timedelta = timedelta(minutes=15),
) -> TraceWorld:
    """A world running the trace's windows ``[first_window, first_window + windows)``.

    The facility has as many 8-GPU hosts as the slice's peak demand needs, at most
    ``max_gpus`` GPUs (runs that do not fit are skipped and counted)."""
    step = int(window.total_seconds())
    t0 = first_window * step
    t1 = t0 + windows * step
    in_slice = sorted(
        (r for r in runs if r.start_s < t1 and r.end_s > t0), key=lambda r: (r.start_s, r.job)
    )
    gpus = _peak_gpus(in_slice, t0, t1, step)
    if max_gpus is not None:
        gpus = min(gpus, max_gpus)
    hosts = max(1, -(-gpus // _PER_HOST))
    world = World(seed=seed, epoch=epoch, window=window, windows=windows)
    rng = random.Random(f"{seed}:trace")
    facility = world.add_facility(site)
    ids = world.add_chips(facility.facility_id, model, hosts * _PER_HOST)
    host_of = {cid: i // _PER_HOST for i, cid in enumerate(ids)}
    free = [list(ids[h * _PER_HOST : (h + 1) * _PER_HOST]) for h in range(hosts)]
    running: list[tuple[TraceRun, list[str]]] = []
    placed: dict[int, list[tuple[TraceRun, list[str], float]]] = {}
    job_util: dict[str, float] = {}
    job_comm: dict[str, float] = {}
    skipped = 0
    pending = list(in_slice)
    for w in range(windows):
        ws, we = t0 + w * step, t0 + (w + 1) * step
        # Runs that ended before this window give their GPUs back.
        for run, chips in running:
            if run.end_s <= ws:
                for cid in chips:
                    free[host_of[cid]].append(cid)
        running = [(run, chips) for run, chips in running if run.end_s > ws]
        while pending and pending[0].start_s < we:
            run = pending.pop(0)
            got = _allocate(free, run.gpus)
            if got is None:
                skipped += 1
                continue
            running.append((run, got))
            job_util.setdefault(run.job, rng.uniform(0.3, 0.95))
            job_comm.setdefault(run.job, rng.uniform(0.2, 0.95))
        placed[w] = [
            (run, chips, float(min(run.end_s, we) - max(run.start_s, ws)))
            for run, chips in running
            if min(run.end_s, we) > max(run.start_s, ws)
        ]

    def apply(w: int) -> None:
        for cid in ids:
            world.unlink_all(cid)
            chip = world.chips[cid]
            chip.util, chip.duty = 0.01, 1.0
        duty_of: dict[str, float] = {}
        for _run, chips, seconds in placed[w]:
            for cid in chips:
                duty_of[cid] = min(1.0, duty_of.get(cid, 0.0) + seconds / step)
        for run, chips, _seconds in placed[w]:
            util = job_util[run.job] * run.gpu_share
            for cid in chips:
                world.chips[cid].util = util
                world.chips[cid].duty = duty_of[cid]
            if len(chips) > 1:
                _link_job(world, chips, job_util[run.job] * job_comm[run.job])

    for w in range(windows):
        world.at(w, apply)
    return TraceWorld(world, runs_placed=len(in_slice) - skipped, runs_skipped=skipped)


def _allocate(free: list[list[str]], n: int) -> list[str] | None:
    """``n`` free GPUs: whole free hosts for each 8, the fullest host that holds the rest;
    ``None`` (nothing taken) when they are not there."""
    whole = [h for h in free if len(h) == _PER_HOST][: n // _PER_HOST]
    if len(whole) < n // _PER_HOST:
        return None
    rest = n % _PER_HOST
    taken = {id(h) for h in whole}
    part: list[str] | None = None
    if rest:
        fits = sorted((h for h in free if len(h) >= rest and id(h) not in taken), key=len)
        if not fits:
            return None
        part = fits[0]
    chips: list[str] = []
    for host in whole:
        chips.extend(host)
        host.clear()
    if part is not None:
        chips.extend(part[:rest])
        del part[:rest]
    return chips


def _link_job(world: World, chips: list[str], intensity: float) -> None:
    """All-to-all within each host, a ring across hosts, at ``intensity`` of what the links
    carry while the GPUs are busy."""
    kind = world.chips[chips[0]].model.scale_up_link
    hosts: dict[int, list[str]] = {}
    index = {cid: i for i, cid in enumerate(world.chips)}
    for cid in chips:
        hosts.setdefault(index[cid] // _PER_HOST, []).append(cid)
    groups = [hosts[h] for h in sorted(hosts)]
    for group in groups:
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                world.link(a, b, kind, PAIR_GBYTES_PER_S * intensity)
    if len(groups) > 1:
        for n in range(len(groups) if len(groups) > 2 else 1):
            group, nxt = groups[n], groups[(n + 1) % len(groups)]
            for a, b in zip(group, nxt, strict=False):
                world.link(a, b, LinkKind.INFINIBAND, IB_GBYTES_PER_S * intensity)
