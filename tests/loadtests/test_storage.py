"""The storage measurement (docs/SCALE.md): a tiny real run on SQLite."""

from __future__ import annotations

from pathlib import Path

from loadtests.storage import run


def test_every_report_is_weighed_in_the_log_and_the_reports_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    result = run(url, tmp_path, chips=8, reports=3)
    assert result["reports"] == 24
    per_report = result["bytes_per_report"]
    assert isinstance(per_report, dict)
    # The envelope is stored once per report: the log's bodies hold at least its bytes.
    assert per_report["log_entries"]["data"] >= result["envelope_bytes_mean"]
    assert per_report["reports"]["data"] > 0
    assert result["bytes_per_report_total"] == round(
        sum(v["data"] + v["indexes"] for v in per_report.values()), 1
    )
