"""Calibration of the detection rules: false alarms on honest fleets, and what a setting buys.

Two measurements (docs/VERIFIER.md, "Calibration on real fleets", records their output):

``fleets``
    Honest fleets from public GPU cluster traces (real job schedules: Microsoft Philly, committed
    in ``tests/data/traces/``; Alibaba OpenB, cut into ``loadtests/traces/cache/`` by
    ``python -m loadtests.traces.make_samples openb``), a synthetic schedule shaped like OpenB
    (committed) and the project's own honest fleet, simulated window by
    window, signed, ingested and judged as each ``--every``-th window closes. Prints chip-days
    and false alarms per rule per 10,000 chip-days. ``--legacy`` judges the same fleets as the
    rules did before issue 14: peers judged against the fixed 10 Gbit/s bar (link capacities
    set to 0) and hosts as a fixed 25% of chip power (no host power declared).

``tradeoff``
    For the thresholds the recalibration introduced, a few settings each: false alarms on the
    honest near miss (a crash-looping job) and the smallest planted violation still caught in
    a small fleet: the busy-time floor of ``chip.underreporting`` against a chip hiding work in
    bursts of a given duty, the host model uncertainty of ``power.ghost_chips`` against a
    facility declaring a given fraction of its host power.

    python -m loadtests.calibrate fleets --days 2 --every 8
    python -m loadtests.calibrate fleets --days 2 --every 8 --legacy
    python -m loadtests.calibrate fleets --days 7 --every 16 --fleet philly --seed 6
    python -m loadtests.calibrate tradeoff
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from loadtests.traces import make_samples
from simulator.scenarios import (
    ScenarioParams,
    ScenarioResult,
    build_world,
    judge_world,
)
from simulator.traces import load_trace, trace_world
from simulator.violations import (
    PLANTS,
    PlantContext,
    plant_burst_hider,
    plant_host_power_misdeclared,
)
from simulator.world import World
from verifier.policy import Policy, load_builtin_policy, parse_policy

__all__ = ["main"]

TRACES = Path(__file__).resolve().parent.parent / "tests" / "data" / "traces"
# The OpenB slice is not committed (no licence to redistribute it): ``python -m
# loadtests.traces.make_samples openb`` cuts it into the cache; the synthetic schedule shaped
# like it is committed.
TRACE_FILES = {
    "philly": TRACES / "philly_2017-10-19_7d.csv",
    "openb": make_samples.CACHE / make_samples.OPENB_FILE,
    "openb-synthetic": TRACES / make_samples.OPENB_SYNTHETIC_FILE,
}
WINDOWS_PER_DAY = 96


def policy_with(name: str, rule_id: str, **values: str) -> Policy:
    """A shipped policy with some of one rule's parameters replaced (TOML literals)."""
    text = resources.files("verifier").joinpath("policies", f"{name}.toml").read_text()
    head, sep, rest = text.partition(f'[rules."{rule_id}"]')
    table, nxt, tail = rest.partition("\n[rules.")
    for key, value in values.items():
        table, n = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", table)
        if n != 1:
            raise KeyError(f"{rule_id}.{key}")
    return parse_policy(head + sep + table + nxt + tail)


def legacy_policy(name: str) -> Policy:
    """The peer side as before issue 14: only the fixed 10 Gbit/s bar (capacities ~0)."""
    return policy_with(
        name,
        "chip.underreporting",
        link_capacity_bits_per_s='{ "H100" = 1, "H200" = 1, "B200" = 1, "MI300X" = 1 }',
        unknown_model_link_bits_per_s="1",
    )


def _undeclare(world: World) -> None:
    for facility in world.facilities.values():
        facility.host_declared = None


def _alarms_line(label: str, result: ScenarioResult) -> str:
    per_rule = Counter(f.rule_id for _w, f in result.false_alarms)
    rate = {r: n / result.chip_days * 10_000 for r, n in per_rule.items()}
    detail = ", ".join(f"{r} {per_rule[r]} ({rate[r]:.0f}/10k)" for r in sorted(per_rule)) or "none"
    bound = 3 / result.chip_days * 10_000  # 95% upper bound with zero events
    return (
        f"{label:<28} {result.chips:>5} chips {result.windows:>4} windows "
        f"{result.chip_days:>8.1f} chip-days  false alarms: {len(result.false_alarms)} "
        f"[{detail}]  (zero events bound: <{bound:.1f}/10k)"
    )


def fleets(args: argparse.Namespace) -> int:
    policy = legacy_policy(args.policy) if args.legacy else load_builtin_policy(args.policy)
    windows = round(args.days * WINDOWS_PER_DAY)
    for name, file in TRACE_FILES.items():
        if name not in args.fleet:
            continue
        if not file.exists():
            print(f"{name}: {file} is missing (python -m loadtests.traces.make_samples {name})")
            continue
        built = trace_world(
            load_trace(file),
            seed=args.seed,
            windows=windows,
            first_window=round(args.from_day * WINDOWS_PER_DAY),
            max_gpus=args.max_gpus,
        )
        if args.legacy:
            _undeclare(built.world)
        result = judge_world(name, built.world, policy, every=args.every)
        print(_alarms_line(f"{name} ({built.runs_placed} runs)", result), flush=True)
        _examples(result)
    if "own" not in args.fleet:
        return 0
    params = ScenarioParams(chips=args.own_chips, seed=args.seed, windows=windows)
    world = build_world(params, policy, windows)
    if args.legacy:
        _undeclare(world)
    result = judge_world("honest", world, policy, every=args.every)
    print(_alarms_line("project honest fleet", result), flush=True)
    _examples(result)
    return 0


def _examples(result: ScenarioResult) -> None:
    seen: set[str] = set()
    for _w, f in result.false_alarms:
        if f.rule_id not in seen:
            seen.add(f.rule_id)
            print(f"    e.g. {f.rule_id}: {f.summary}")


def _small(policy: Policy, plant: Callable[[PlantContext], None], seed: int = 3) -> ScenarioResult:
    params = ScenarioParams(chips=64, seed=seed, windows=10)
    world = build_world(params, policy, params.windows)
    plant(PlantContext(world, policy, random.Random(f"{seed}:calibrate"), params.windows))
    return judge_world("tradeoff", world, policy)


def _caught(result: ScenarioResult) -> bool:
    return all(p.found for p in result.planted) and not result.false_alarms


def tradeoff(args: argparse.Namespace) -> int:
    print("chip.underreporting (peers): busy_time_floor vs work hidden in bursts, claiming 2%")
    for floor in ("0.01", "0.02", "0.05"):
        policy = policy_with(args.policy, "chip.underreporting", busy_time_floor=floor)
        crash = _small(policy, lambda ctx: PLANTS["crash_loop"](ctx, 0))
        smallest = None
        for duty in (0.03, 0.05, 0.1, 0.2):
            if _caught(_small(policy, lambda ctx, d=duty: plant_burst_hider(ctx, 0, duty=d))):
                smallest = duty
                break
        print(
            f"  floor {floor:>5}: crash-looping job false alarms {len(crash.false_alarms)}; "
            f"smallest hidden duty caught: {'none' if smallest is None else f'{smallest:.0%}'}",
            flush=True,
        )
    print("power.ghost_chips: host_model_uncertainty_fraction vs host power declared too low")
    for uncertainty in ("0.05", "0.1", "0.2"):
        policy = policy_with(
            args.policy, "power.ghost_chips", host_model_uncertainty_fraction=uncertainty
        )
        honest = _small(policy, lambda ctx: None)
        largest = None
        for fraction in (0.8, 0.6, 0.4):
            planted = _small(
                policy, lambda ctx, f=fraction: plant_host_power_misdeclared(ctx, 0, fraction=f)
            )
            if _caught(planted):
                largest = fraction
                break
        print(
            f"  uncertainty {uncertainty:>4}: honest fleet false alarms "
            f"{len(honest.false_alarms)}; host power declared at "
            f"{'no tested fraction' if largest is None else f'{largest:.0%}'} of the truth "
            "or less is caught",
            flush=True,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.calibrate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fleets", help="false alarms per rule on honest fleets from real traces")
    f.add_argument("--days", type=float, default=1.0, help="days of each trace to run")
    f.add_argument(
        "--from-day",
        type=float,
        default=0.0,
        help="start this many days into each trace slice (runs of consecutive days add up)",
    )
    f.add_argument("--every", type=int, default=8, help="judge every n-th window")
    f.add_argument("--max-gpus", type=int, default=None, help="cap on each trace fleet's GPUs")
    f.add_argument("--own-chips", type=int, default=400, help="size of the project's fleet")
    f.add_argument("--policy", default="default")
    f.add_argument("--seed", type=int, default=5)
    f.add_argument("--legacy", action="store_true", help="judge as before issue 14")
    f.add_argument(
        "--fleet",
        action="append",
        choices=[*TRACE_FILES, "own"],
        help="run only this fleet (repeatable; default: every trace fleet and the project's own)",
    )
    f.set_defaults(run=fleets)
    t = sub.add_parser("tradeoff", help="false alarms vs smallest violation caught")
    t.add_argument("--policy", default="demo")
    t.set_defaults(run=tradeoff)
    args = parser.parse_args(argv)
    if args.command == "fleets" and not args.fleet:
        args.fleet = [*TRACE_FILES, "own"]
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
