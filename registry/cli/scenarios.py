"""``chipreg scenarios``: run the verifier's scenario suite and print its results table."""

from __future__ import annotations

import argparse
import sys
import time

from registry.cli.render import table
from registry.settings import Settings
from simulator.scenarios import (
    SCENARIOS,
    ScenarioError,
    ScenarioParams,
    ScenarioResult,
    run_scenario,
)
from verifier.policy import builtin_policy_names, load_builtin_policy

__all__ = ["add_parser", "results_table"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scenarios",
        help="run the verifier scenario suite (planted violations and honest fleets)",
        description="Simulate fleets with planted violations and honest fleets, sign every "
        "report, meter reading and round trip, run the verifier as each 15-minute window "
        "closes, and report per scenario whether each planted violation was found, how many "
        "windows after it began, and the false alarms (also per 10,000 chip-days). Needs no "
        "database. Exits 1 on any missed violation or false alarm. Scenarios: "
        + ", ".join(SCENARIOS)
        + ".",
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="SCENARIO",
        help="scenarios to run (default: all)",
    )
    p.add_argument(
        "--chips", type=int, default=400, help="honest chips per fleet, approximately (400)"
    )
    p.add_argument("--windows", type=int, default=12, help="15-minute windows to simulate (12)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument(
        "--every", type=int, default=1, help="judge every N-th window only (1: every window)"
    )
    p.add_argument(
        "--policy",
        default="demo",
        help=f"one of {', '.join(builtin_policy_names())} (demo: thresholds a simulated fleet "
        "can reach)",
    )
    p.add_argument("--details", action="store_true", help="list every planted violation")
    p.set_defaults(func=_scenarios)


def _scenarios(args: argparse.Namespace, _settings: Settings) -> int:
    unknown = [n for n in args.names if n not in SCENARIOS]
    if unknown:
        print(f"chipreg scenarios: unknown scenario(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.chips < 1 or args.windows < 1 or args.every < 1:
        print("chipreg scenarios: --chips, --windows and --every must be positive", file=sys.stderr)
        return 2
    policy = load_builtin_policy(args.policy)  # unknown: exits 2 through the error handler
    params = ScenarioParams(chips=args.chips, seed=args.seed, windows=args.windows)
    began = time.perf_counter()
    results = []
    for name in args.names or list(SCENARIOS):
        try:
            results.append(run_scenario(SCENARIOS[name], params, policy, every=args.every))
        except ScenarioError as exc:
            print(f"chipreg scenarios: {name}: {exc}", file=sys.stderr)
            return 2
    print(
        f"scenario suite: policy {policy.policy_id} v{policy.version}, about {args.chips} "
        f"honest chips, seed {args.seed}, 15-minute windows, judged every {args.every} "
        f"window(s), {time.perf_counter() - began:.1f} s\n"
    )
    print(results_table(results))
    if args.details or any(not r.ok for r in results):
        print("\n" + planted_table(results, only_missed=not args.details))
    alarms = [(r.name, w, f) for r in results for w, f in r.false_alarms]
    if alarms:
        print("\nfalse alarms:")
        for name, w, f in alarms[:50]:
            print(f"  {name} window {w}: {f.rule_id} {f.subject_id}: {f.summary}")
    planted = sum(len(r.planted) for r in results)
    found = sum(p.found for r in results for p in r.planted)
    print(
        f"\n{found}/{planted} planted violations found, {len(alarms)} false alarm(s): "
        + ("PASS" if found == planted and not alarms else "FAIL")
    )
    return 0 if found == planted and not alarms else 1


def results_table(results: list[ScenarioResult]) -> str:
    """One row per scenario."""
    rows = []
    for r in results:
        delays = [p.delay for p in r.planted if p.delay is not None]
        rows.append(
            [
                r.name,
                r.chips,
                r.windows,
                f"{r.chip_days:.0f}",
                r.reports,
                f"{sum(p.found for p in r.planted)}/{len(r.planted)}",
                "-"
                if not delays
                else f"{min(delays)}-{max(delays)}"
                if len(delays) > 1
                else delays[0],
                len(r.false_alarms),
                f"{r.false_alarms_per_10k_chip_days:.1f}",
                f"{r.seconds:.1f}",
            ]
        )
    return table(
        [
            "scenario",
            "chips",
            "windows",
            "chip-days",
            "reports",
            "found",
            "delay (windows)",
            "false alarms",
            "per 10k chip-days",
            "seconds",
        ],
        rows,
    )


def planted_table(results: list[ScenarioResult], *, only_missed: bool = False) -> str:
    """One row per planted violation."""
    rows = [
        [
            r.name,
            p.label.kind,
            p.label.rule_id,
            p.label.start_window,
            "-" if p.found_window is None else p.found_window,
            "MISSED" if p.delay is None else p.delay,
            p.label.detail,
        ]
        for r in results
        for p in r.planted
        if not only_missed or not p.found
    ]
    return table(
        ["scenario", "violation", "rule", "starts", "found in", "delay", "what"],
        rows,
        max_width=80,
    )
