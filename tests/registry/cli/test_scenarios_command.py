"""``chipreg scenarios``, run as a user would: a subprocess, its table and its exit status."""

from __future__ import annotations

from tests.registry.cli.test_commands import chipreg


def test_help_lists_the_scenarios_and_options() -> None:
    run = chipreg("scenarios", "--help")
    assert run.returncode == 0
    for word in ("--chips", "--windows", "--seed", "--every", "--policy", "undeclared_cluster"):
        assert word in run.stdout


def test_small_suite_prints_the_table_and_passes() -> None:
    run = chipreg(
        "scenarios", "honest", "replayed_report", "above_peak", "--chips", "64", "--details"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    lines = out.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("scenario  "))
    for column in ("chips", "found", "delay (windows)", "false alarms", "per 10k chip-days"):
        assert column in lines[top]
    end = lines.index("", top)
    rows = {line.split()[0]: line.split() for line in lines[top + 2 : end]}
    assert set(rows) == {"honest", "replayed_report", "above_peak"}
    assert rows["honest"][5] == "0/0" and rows["honest"][7] == "0"
    assert rows["replayed_report"][5] == "1/1"
    assert "report.replay" in out and "chip.above_peak" in out  # the --details rows
    assert out.rstrip().endswith("2/2 planted violations found, 0 false alarm(s): PASS")


def test_unknown_scenario_and_unreachable_policy_exit_2() -> None:
    run = chipreg("scenarios", "no_such_thing")
    assert run.returncode == 2
    assert "unknown scenario(s) no_such_thing" in run.stderr
    # The default policy's cluster threshold (1e20 OP/s) needs ~130,000 chips: refused.
    run = chipreg("scenarios", "undeclared_cluster", "--policy", "default", "--chips", "64")
    assert run.returncode == 2
    assert "too many to simulate" in run.stderr
