"""The load runner's best-window rates (``peak_5s_reports_per_s``, ``best_10s_reports_per_s``):
the busiest run of whole seconds, sliding, not fixed buckets."""

from __future__ import annotations

from loadtests.losscheck import Ack
from loadtests.run import _peak_rate


def _acks(per_second: dict[int, int]) -> list[Ack]:
    return [
        Ack(chip_id="c", seq=n, digest="d", log_index=n, at=second + 0.5)
        for second, count in per_second.items()
        for n in range(count)
    ]


def test_the_best_window_slides_over_bucket_edges() -> None:
    # 100/s for seconds 3..12: fixed 10 s buckets (0-9, 10-19) would see 70 and 30.
    acks = _acks({s: 100 for s in range(3, 13)} | {20: 10})
    assert _peak_rate(acks, 10.0) == 100.0
    assert _peak_rate(acks, 5.0) == 100.0


def test_a_run_shorter_than_the_window_is_averaged_over_the_window() -> None:
    assert _peak_rate(_acks({0: 50, 1: 50}), 10.0) == 10.0
    assert _peak_rate([], 10.0) == 0.0
