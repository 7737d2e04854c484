"""loadtests.bench_enroll: a real registry enrolls a small fleet in bulk and logs each chip."""

from __future__ import annotations

import json
from pathlib import Path

from loadtests import bench_enroll


def test_bulk_enrollment_is_timed_and_every_chip_logged(tmp_path: Path) -> None:
    out = tmp_path / "enroll.json"
    code = bench_enroll.main(["--chips", "120", "--workdir", str(tmp_path), "--json-out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["chips"] == 120 and result["calls"] == 1
    assert result["enrollment_records_logged"] == 120
    assert result["chips_per_s"] > 0 and result["registry_cpu_us_per_chip"] > 0
    # the run directory is removed afterwards
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []


def test_bench_enroll_refuses_an_empty_fleet() -> None:
    assert bench_enroll.main(["--chips", "0"]) == 2
