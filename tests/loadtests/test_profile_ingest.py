"""Smoke test of the ingest profile harness: a tiny in-process run on SQLite ingests every
report and reports CPU per report for every phase. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests import bench_ingest_parts, profile_ingest


def test_profile_harness_ingests_every_report_and_reports_each_phase(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    argv = ["--db", "sqlite", "--chips", "8", "--reports", "4", "--batch-size", "4"]
    assert profile_ingest.main([*argv, "--group", "2", "--json-out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["reports_timed"] == 16  # the first half of 8 chips x 4 reports
    assert set(summary["us_per_report"]) == set(profile_ingest.PHASES)
    assert all(v >= 0 for v in summary["us_per_report"].values())
    assert len(summary["loadavg_before"]) == 3
    assert summary["us_verify_per_report"] > 0


def test_parts_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_ingest_parts.main(["--db", "sqlite", "--chips", "8", "--rounds", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    for part in ("body_parse", "statement_parse", "chain_heads_query"):
        assert out[part]["old_us"] > 0
        assert out[part]["new_us"] > 0
