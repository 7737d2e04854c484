"""The near misses of the recalibrated rules (issue 14), each in a small simulated fleet under
the demo policy: an honest crash-looping job raises nothing; a chip hiding its work behind short
bursts and a facility declaring too little host power are still caught, in their first window."""

from __future__ import annotations

import pytest

from simulator.scenarios import SCENARIOS, ScenarioParams, run_scenario
from verifier.policy import load_builtin_policy

POLICY = load_builtin_policy("demo")
SMALL = ScenarioParams(chips=64, seed=3, windows=10)


def test_an_honest_crash_looping_job_raises_no_alarm() -> None:
    result = run_scenario(SCENARIOS["crash_loop"], SMALL, POLICY)
    assert result.planted == ()
    assert result.false_alarms == ()


@pytest.mark.parametrize(
    ("scenario", "rule_id"),
    [("burst_hider", "chip.underreporting"), ("host_power_misdeclared", "power.ghost_chips")],
)
def test_the_violation_next_to_it_is_caught_at_once(scenario: str, rule_id: str) -> None:
    result = run_scenario(SCENARIOS[scenario], SMALL, POLICY)
    [planted] = result.planted
    assert (planted.label.rule_id, planted.delay) == (rule_id, 0)
    assert result.false_alarms == ()
