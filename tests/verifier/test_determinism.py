"""Same snapshot, same findings: whatever the input order and whatever the process.

The fleet comes from the scale benchmark's generator (a scaled-down layout with one of every
playbook violation planted over three windows), so the fast paths the engine takes on a real
fleet are the ones exercised here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from loadtests.bench_verifier import SMALL, T0, WINDOW, build
from verifier.engine import run
from verifier.facts import Snapshot
from verifier.policy import Policy, load_builtin_policy

WINDOWS = 3
AS_OF = T0 + WINDOW * WINDOWS
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def _planted() -> Snapshot:
    return build(6_000, layout=SMALL, windows=WINDOWS, plant=True)


def _mixed(items: Iterable[T], rnd: random.Random) -> list[T]:
    out = list(items)
    rnd.shuffle(out)
    return out


def _shuffled(snapshot: Snapshot, seed: int) -> Snapshot:
    rnd = random.Random(seed)
    return dataclasses.replace(
        snapshot,
        chips={c: snapshot.chips[c] for c in _mixed(snapshot.chips, rnd)},
        reports=_mixed(snapshot.reports, rnd),
        clusters=_mixed(snapshot.clusters, rnd),
        installations=_mixed(snapshot.installations, rnd),
        submissions=_mixed(snapshot.submissions, rnd),
        rtts=_mixed(snapshot.rtts, rnd),
        meter_readings=_mixed(snapshot.meter_readings, rnd),
    )


def test_planted_fleet_finds_every_kind_in_any_input_order(demo_policy: Policy) -> None:
    snapshot = _planted()
    expected = [f.to_dict() for f in run(snapshot, demo_policy, AS_OF)]
    kinds = {f["kind"] for f in expected}
    assert kinds == {
        "above_peak",
        "budget_exceeded",
        "chip_silent",
        "chip_unaccounted",
        "cloned_identity",
        "forbidden_country",
        "ghost_chips",
        "location_mismatch",
        "one_sided_link",
        "replayed_report",
        "split_cluster",
        "threshold_unnotified",
        "undeclared_cluster",
        "underreporting",
        "wrong_facility",
    }
    for seed in (1, 2):
        shuffled = _shuffled(snapshot, seed)
        assert [f.to_dict() for f in run(shuffled, demo_policy, AS_OF)] == expected


def test_honest_fleet_has_no_findings(default_policy: Policy) -> None:
    snapshot = build(6_000, layout=SMALL, windows=WINDOWS)
    assert run(snapshot, default_policy, AS_OF) == []
    # Under the demo policy's tiny FLOP thresholds (2e21) the honest training clusters cross
    # them without notifying, and that is all.
    demo = run(snapshot, load_builtin_policy("demo"), AS_OF)
    assert demo
    assert {f.kind for f in demo} == {"threshold_unnotified"}


_CHILD = """
import json, sys
from loadtests.bench_verifier import SMALL, T0, WINDOW, build
from verifier.engine import run
from verifier.policy import load_builtin_policy
snapshot = build(3_000, layout=SMALL, windows=3, plant=True)
found = run(snapshot, load_builtin_policy("demo"), T0 + WINDOW * 3)
json.dump([f.to_dict() for f in found], sys.stdout, sort_keys=True)
"""


def test_findings_do_not_depend_on_the_process_hash_seed() -> None:
    """String hashing is salted per process; no finding may depend on it (clone conflicts
    once listed tied reports in set order)."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert any(f["kind"] == "cloned_identity" for f in outputs[0])


def test_window_order_and_length_do_not_matter(demo_policy: Policy) -> None:
    """Reports sorted by window or by chip, and one window twice as long, give the same
    findings as the snapshot order."""
    snapshot = _planted()
    longer = [
        dataclasses.replace(r, window_end=r.window_end + timedelta(minutes=15))
        if r.window_start == T0
        else r
        for r in snapshot.reports
    ]
    base = dataclasses.replace(snapshot, reports=longer)
    expected = [f.to_dict() for f in run(base, demo_policy, AS_OF)]
    assert expected
    by_chip = dataclasses.replace(base, reports=sorted(longer, key=lambda r: r.chip_id))
    assert [f.to_dict() for f in run(by_chip, demo_policy, AS_OF)] == expected
