"""The ``chipreg`` console script, run as a user would: a subprocess with its own environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def chipreg(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registry.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_demo_finds_the_planted_violations_and_nothing_else(tmp_path: Path) -> None:
    run = chipreg("demo", "--data-dir", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "FOUND" in out and "MISSED" not in out
    assert "false alarms: 0 silent chips, 0 declared clusters flagged -> OK" in out
    assert out.count("chip_silent") == 5
    assert out.count("undeclared_cluster") >= 2  # the finding and its ground-truth row
    assert "/docs" in out and "/v1/findings" in out
    assert re.search(
        r"Console: http://127\.0\.0\.1:\d+/console\n  log in as the inspector "
        r"with the token chipreg_",
        out,
    )
    # The partner's view: the whole log re-verified and the findings re-derived from it.
    assert "partner audit (chipreg audit, log key only): PASS" in out
    assert "1 verifier run(s) re-derived, 6 served findings all logged" in out
    assert (tmp_path / "chipreg.sqlite3").exists()


def test_admin_token_then_verify_on_an_empty_registry(tmp_path: Path) -> None:
    env = {
        "CHIPREG_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
        "CHIPREG_LOG_KEY_FILE": str(tmp_path / "log-key"),
    }
    made = chipreg("admin", "create-token", "--name", "ops", "--role", "admin", env=env)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["token"].startswith("chipreg_")

    bad = chipreg("admin", "create-token", "--name", "x", "--role", "operator", env=env)
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"] == "bad_binding"

    verified = chipreg("verify", "--policy", "demo", "--as-of", "2026-01-01T00:00:00Z", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "0 findings" in verified.stdout

    unknown = chipreg("verify", "--policy", "nope", env=env)
    assert unknown.returncode == 2 and "nope" in unknown.stderr

    # Findings stored now must be true now: no judging an instant still to come.
    future = chipreg("verify", "--policy", "demo", "--as-of", "2099-01-01T00:00:00Z", env=env)
    assert future.returncode == 2 and "as_of_in_future" in future.stdout, future.stderr


def test_production_refuses_development_defaults(tmp_path: Path) -> None:
    run = chipreg("verify", env={"CHIPREG_ENVIRONMENT": "production"})
    assert run.returncode == 2
    assert "PostgreSQL" in run.stderr


@pytest.mark.parametrize("command", [["discover"], ["keygen"], ["dry-run"]])
def test_agent_on_a_host_without_nvidia_driver_says_so(command: list[str], tmp_path: Path) -> None:
    run = chipreg("agent", *command, "--backend", "nvml", "--state-dir", str(tmp_path))
    assert run.returncode == 1
    assert "no NVIDIA driver/NVML found on this host" in run.stderr


def test_agent_dry_run_with_simulated_backend_changes_nothing(tmp_path: Path) -> None:
    run = chipreg(
        "agent",
        "dry-run",
        "--backend",
        "simulated",
        "--simulated-chips",
        "2",
        "--state-dir",
        str(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    statements = json.loads(run.stdout)
    assert [s["predicate"]["seq"] for s in statements] == [1, 1]
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").glob("*.json"))


def test_agent_facility_claim_from_option_or_environment(tmp_path: Path) -> None:
    base = ["agent", "dry-run", "--backend", "simulated", "--simulated-chips", "2"]
    by_option = chipreg(*base, "--state-dir", str(tmp_path / "a"), "--facility-id", "12")
    assert by_option.returncode == 0, by_option.stderr
    assert [s["predicate"]["facility_id"] for s in json.loads(by_option.stdout)] == [12, 12]
    env = {"CHIPREG_AGENT_FACILITY_ID": "5"}
    by_env = chipreg(*base, "--state-dir", str(tmp_path / "b"), env=env)
    assert [s["predicate"]["facility_id"] for s in json.loads(by_env.stdout)] == [5, 5]
    # The option wins over the environment.
    both = chipreg(*base, "--state-dir", str(tmp_path / "c"), "--facility-id", "9", env=env)
    assert [s["predicate"]["facility_id"] for s in json.loads(both.stdout)] == [9, 9]
    bad = chipreg(*base, "--state-dir", str(tmp_path / "d"), env={"CHIPREG_AGENT_FACILITY_ID": "x"})
    assert bad.returncode == 1 and "CHIPREG_AGENT_FACILITY_ID" in bad.stderr
    zero = chipreg(*base, "--state-dir", str(tmp_path / "e"), "--facility-id", "0")
    assert zero.returncode == 1 and "facility id" in zero.stderr


def test_verify_json_prints_the_api_s_public_form_of_each_finding(tmp_path: Path) -> None:
    """``chipreg verify --json``, the API (``FindingPublic``) and the webhooks show a finding in
    one form (:func:`registry.services.findings.finding_document`), field for field."""
    from registry.api.schemas.queries import FindingPublic
    from registry.db.engine import make_engine, make_session_factory
    from registry.db.models import Finding

    demo = chipreg("demo", "--data-dir", str(tmp_path))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    url = f"sqlite:///{tmp_path / 'chipreg.sqlite3'}"
    env = {"CHIPREG_DATABASE_URL": url, "CHIPREG_LOG_KEY_FILE": str(tmp_path / "log-key")}
    verified = chipreg("verify", "--policy", "demo", "--json", env=env)
    assert verified.returncode == 0, verified.stderr
    printed = [json.loads(line) for line in verified.stdout.splitlines()]
    assert printed, verified.stdout
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            for document in printed:
                row = session.get(Finding, document["id"])
                assert row is not None
                assert FindingPublic.from_row(row).model_dump(mode="json") == document
    finally:
        engine.dispose()
