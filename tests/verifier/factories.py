"""Builders for verifier test facts, with real-world numbers.

A report window is 15 minutes (900 s). At the 100 Gbit/s link threshold a pair must exchange
more than 100e9 * 900 / 8 = 1.125e13 bytes in that window to be linked.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from verifier.facts import ChipFact, DeclaredClusterFact, LinkFact, ReportFact

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
H100 = 989e12
INSTALLED = T0 - timedelta(days=30)
AT_THRESHOLD = 11_250_000_000_000  # exactly 100 Gbit/s over 900 s: not "over"
ABOVE = 12_000_000_000_000  # 106.7 Gbit/s over 900 s
BELOW = 11_000_000_000_000  # 97.8 Gbit/s over 900 s

_log = itertools.count(1000)


def chip(
    chip_id: str,
    *,
    peak: float = H100,
    facility: int | None = 1,
    country: str | None = "US",
    installed: datetime | None = INSTALLED,
    model: str = "H100-SXM",
) -> ChipFact:
    """An installed H100 unless told otherwise."""
    return ChipFact(chip_id, model, peak, facility, country, installed)


def chips(*facts: ChipFact) -> dict[str, ChipFact]:
    """Chips keyed by id, as ``Snapshot.chips`` wants them."""
    return {c.chip_id: c for c in facts}


def report(
    chip_id: str,
    peers: Mapping[str, int] | None = None,
    *,
    start: datetime = T0,
    length: timedelta = WINDOW,
    seq: int = 1,
    log_index: int | None = -1,
    link: str = "nvlink",
) -> ReportFact:
    """A report claiming ``bytes`` exchanged with each peer (split evenly into tx and rx).

    ``log_index=-1`` (the default) draws a fresh log index; ``None`` means not logged.
    """
    links = tuple(
        LinkFact(peer, link, total // 2, total - total // 2)
        for peer, total in (peers or {}).items()
    )
    index = next(_log) if log_index == -1 else log_index
    return ReportFact(chip_id, seq, start, start + length, 0.9, 6.3e5, links, index)


def ring_reports(
    ids: Iterable[str], bytes_per_pair: int = ABOVE, *, start: datetime = T0, seq: int = 1
) -> list[ReportFact]:
    """Each chip reports traffic with the next one (one-sided), closing the ring."""
    ring = list(ids)
    return [
        report(c, {ring[(i + 1) % len(ring)]: bytes_per_pair}, start=start, seq=seq)
        for i, c in enumerate(ring)
    ]


def declared(
    cluster_id: int,
    ids: Iterable[str],
    *,
    start: datetime = T0 - timedelta(days=1),
    end: datetime = T0 + timedelta(days=1),
    facility: int | None = 1,
) -> DeclaredClusterFact:
    """A cluster declaration in force for a day either side of ``T0`` unless told otherwise."""
    return DeclaredClusterFact(
        cluster_id, f"cluster-{cluster_id}", frozenset(ids), start, end, facility
    )


def h100_ids(count: int, prefix: str = "gpu") -> list[str]:
    """``count`` chip ids that sort in numeric order."""
    return [f"{prefix}-{i:05d}" for i in range(count)]
