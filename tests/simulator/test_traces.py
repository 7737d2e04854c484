"""Honest fleets from the public trace samples: real schedules become a world whose every
finding is a false alarm (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.traces import make_samples
from simulator.scenarios import judge_world
from simulator.traces import TraceRun, load_trace, trace_world
from verifier.policy import load_builtin_policy

TRACES = Path(__file__).resolve().parent.parent / "data" / "traces"


@pytest.mark.parametrize("name", ["philly_2017-10-19_7d", "openb_synthetic_7d"])
def test_a_few_hours_of_a_real_trace_raise_no_false_alarm(name: str) -> None:
    runs = load_trace(TRACES / f"{name}.csv")
    built = trace_world(runs, seed=5, windows=12, max_gpus=48)
    assert built.runs_placed > 0
    result = judge_world(name, built.world, load_builtin_policy("default"), every=4)
    assert 0 < result.chips <= 48  # hosts for the slice's peak demand, capped
    assert result.false_alarms == ()


def test_runs_keep_their_gpus_and_scale_with_the_time_they_run() -> None:
    # A 16-GPU job running 30 s of window 1 (a crash loop's attempt), then a 4-GPU job.
    runs = [TraceRun("crash", 16, 900 + 100, 900 + 130), TraceRun("small", 4, 0, 3600, 0.5)]
    world = trace_world(runs, seed=1, windows=3).world
    assert len(world.chips) == 24
    for w in range(3):
        for change in world._events[w]:
            change(w)
        busy = {c.chip_id: (c.util, c.duty, len(c.peers)) for c in world.chips.values()}
        if w == 1:
            crashing = [v for v in busy.values() if v[1] < 1]
            assert len(crashing) == 16
            assert {round(d, 4) for _u, d, _p in crashing} == {round(30 / 900, 4)}
            assert all(p >= 7 for _u, _d, p in crashing)  # all-to-all in its two hosts
        shared = [v for v in busy.values() if v[1] == 1 and v[0] > 0.01]
        assert len(shared) == 4 and all(u <= 0.5 * 0.95 for u, _d, _p in shared)


def test_the_committed_synthetic_openb_schedule_is_what_its_generator_draws(tmp_path: Path) -> None:
    # The OpenB trace may not be redistributed: the committed schedule holds no row of it,
    # only draws from the statistics in make_samples, and regenerates byte for byte.
    assert make_samples.main(["openb-synthetic", str(tmp_path)]) == 0
    name = make_samples.OPENB_SYNTHETIC_FILE
    assert (tmp_path / name).read_bytes() == (TRACES / name).read_bytes()
    runs = load_trace(TRACES / name)
    assert len(runs) == make_samples.OPENB_ARRIVALS + make_samples.OPENB_RUNNING_AT_START
    assert not any(r.job.startswith("openb-pod") for r in runs)
    assert {r.gpus for r in runs} <= set(make_samples.OPENB_GPUS)
    assert all(0 <= r.start_s < r.end_s <= make_samples.DAYS * 86400 for r in runs)
