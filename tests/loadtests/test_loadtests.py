"""Smoke test of the load-test tooling: a tiny real run (HTTP, SQLite, locust) and its loss check.

No timing assertions: the point is that the tooling works and that the loss check both passes
on an honest run and catches a report that was acknowledged but is gone.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from loadtests import losscheck, run


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    # find_spec, not importorskip: importing locust monkey-patches this process with gevent,
    # which can deadlock against threads other tests left running (idle ingest writers).
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust is not installed (pip install -e .[load])")
    workdir = tmp_path_factory.mktemp("load")
    summary_path = workdir / "summary.json"
    code = run.main(
        [
            "--db", "sqlite",
            "--chips", "20",
            "--reports", "3",
            "--batch-size", "16",
            "--users", "2",
            "--duration", "15",
            "--ramp", "1",
            "--then-at", "0.8",
            "--workdir", str(workdir),
            "--keep",
            "--json-out", str(summary_path),
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(summary_path.read_text())
    # --keep keeps both runs' directories; the maximum's is the summary's own.
    assert len([p for p in workdir.iterdir() if p.is_dir()]) == 2
    return summary, Path(summary["run_dir"])


def test_every_report_is_acknowledged_stored_and_logged_once(kept_run: tuple[dict, Path]) -> None:
    summary, _ = kept_run
    loss = summary["loss_check"]
    assert loss["ok"], loss["problems"]
    assert summary["accepted"] == 60
    assert summary["rejected"] == 0
    assert loss["acknowledged"] == loss["stored_reports"] == 60
    # the log also holds the registrations and declarations of the fleet
    assert loss["log_size"] > 60
    assert loss["stored_not_acknowledged"] == 0


def test_ack_to_checkpoint_latency_and_cores_are_reported(kept_run: tuple[dict, Path]) -> None:
    summary, _ = kept_run
    # Every acknowledged report reached a signed checkpoint before the registry stopped.
    assert summary["all_acks_in_a_checkpoint"] is True
    latency = summary["ack_to_checkpoint_ms"]
    assert latency["uncovered"] == 0 and latency["observations"] >= 1
    assert 0 <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert summary["loss_check"]["integrated_size"] == summary["loss_check"]["log_size"]
    assert summary["registry_cores_used"] > 0 and summary["loadgen_cores_used"] > 0


def test_then_at_runs_again_at_that_share_of_the_maximum(kept_run: tuple[dict, Path]) -> None:
    summary, _ = kept_run
    then = summary["then_at"]
    assert then["fraction"] == 0.8
    assert then["target_rate"] == round(0.8 * summary["reports_per_s"], 1) > 0
    # A fresh database with the same fleet: the same reports, all acknowledged and logged again.
    assert then["accepted"] == 60 and then["loss_check"]["ok"]
    assert then["loss_check"]["stored_reports"] == 60
    assert then["batch_latency_ms"]


def test_then_at_refuses_what_it_cannot_measure() -> None:
    assert run.main(["--then-at", "1.5"]) == 2
    assert run.main(["--then-at", "0.8", "--target-rate", "100"]) == 2
    assert (
        run.main(["--db", "postgresql", "--database-url", "postgresql://x/y", "--then-at", "0.8"])
        == 2
    )


def test_metrics_add_up_over_worker_processes(kept_run: tuple[dict, Path]) -> None:
    summary, _ = kept_run
    assert summary["workers"] == 2
    assert summary["metrics_accepted_total"] == 60
    assert summary["raw_verify"]["registry_verify_per_s"] > 0


def test_loss_check_catches_a_lost_report(kept_run: tuple[dict, Path]) -> None:
    _, rundir = kept_run
    db = rundir / "registry.sqlite3"
    tampered = rundir / "tampered.sqlite3"
    shutil.copy(db, tampered)
    url = f"sqlite:///{tampered}"
    acks = losscheck.read_acks(rundir / "out")
    assert losscheck.check(url, acks).ok

    lost = acks[7]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM reports WHERE chip_id = :c AND seq = :s"),
            {"c": lost.chip_id, "s": lost.seq},
        )
    engine.dispose()
    result = losscheck.check(url, acks)
    assert not result.ok
    assert any(p.startswith("LOST") and lost.chip_id in p for p in result.problems)


def test_loss_check_catches_a_duplicate_acknowledgement(kept_run: tuple[dict, Path]) -> None:
    _, rundir = kept_run
    url = f"sqlite:///{rundir / 'registry.sqlite3'}"
    acks = losscheck.read_acks(rundir / "out")
    result = losscheck.check(url, [*acks, acks[0]])
    assert not result.ok
    assert any("acknowledged 2 times" in p for p in result.problems)


def test_calibrate_runs_one_fleet_from_a_later_day_of_its_slice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from loadtests import calibrate

    argv = ["fleets", "--days", "0.05", "--from-day", "3", "--every", "2"]
    assert calibrate.main([*argv, "--fleet", "openb-synthetic"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # that fleet only: no other trace, no project fleet
    assert lines[0].startswith("openb-synthetic (") and "false alarms: 0 [none]" in lines[0]
    assert " 5 windows " in lines[0]
