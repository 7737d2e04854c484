"""Plain input values for the detection rules.

The registry builds these from its database (and the partner's audit tool from the log); the
rules never see ORM objects or JSON. Every datetime must be timezone-aware so that instants
compare the same way on every machine; facts validate themselves when built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from verifier.errors import FactError

__all__ = ["ChipFact", "DeclaredClusterFact", "LinkFact", "ReportFact", "Snapshot"]


def _require_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise FactError(f"{what} must be timezone-aware, got naive {value.isoformat()}")


@dataclass(frozen=True, slots=True)
class ChipFact:
    """A registered accelerator as the register knows it now.

    ``peak_ops`` is the chip's theoretical dense BF16 throughput in OP/s (989e12 for an H100).
    ``facility_id``/``country``/``installed_at`` are ``None`` while the chip is not installed.
    """

    chip_id: str
    model: str
    peak_ops: float
    facility_id: int | None
    country: str | None
    installed_at: datetime | None

    def __post_init__(self) -> None:
        if not self.chip_id:
            raise FactError("chip_id must not be empty")
        if not self.peak_ops >= 0:  # also rejects NaN
            raise FactError(f"chip {self.chip_id}: peak_ops must be >= 0, got {self.peak_ops}")
        _require_aware(self.installed_at, f"chip {self.chip_id}: installed_at")


@dataclass(frozen=True, slots=True)
class LinkFact:
    """Bytes a chip says it exchanged with one peer over one link kind during a report window."""

    peer: str
    link: str
    tx_bytes: int
    rx_bytes: int

    def __post_init__(self) -> None:
        if self.tx_bytes < 0 or self.rx_bytes < 0:
            raise FactError(f"link to {self.peer} ({self.link}): byte counts must be >= 0")


@dataclass(frozen=True, slots=True)
class ReportFact:
    """One verified usage report of one chip over ``[window_start, window_end)``.

    ``log_index`` is the report's position in the transparency log, the evidence a finding cites;
    ``None`` for a report not (yet) logged.
    """

    chip_id: str
    seq: int
    window_start: datetime
    window_end: datetime
    utilization: float
    energy_j: float
    links: tuple[LinkFact, ...]
    log_index: int | None

    def __post_init__(self) -> None:
        _require_aware(self.window_start, f"report {self.chip_id}#{self.seq}: window_start")
        _require_aware(self.window_end, f"report {self.chip_id}#{self.seq}: window_end")
        if self.window_end <= self.window_start:
            raise FactError(
                f"report {self.chip_id}#{self.seq}: window_end {self.window_end.isoformat()} "
                f"is not after window_start {self.window_start.isoformat()}"
            )


@dataclass(frozen=True, slots=True)
class DeclaredClusterFact:
    """An operator's signed declaration that ``chip_ids`` work together over ``[start, end]``."""

    cluster_id: int
    name: str
    chip_ids: frozenset[str]
    start: datetime
    end: datetime
    facility_id: int | None

    def __post_init__(self) -> None:
        _require_aware(self.start, f"declared cluster {self.cluster_id}: start")
        _require_aware(self.end, f"declared cluster {self.cluster_id}: end")

    def covers(self, window_start: datetime, window_end: datetime) -> bool:
        """True when the declaration is in force over the whole of the given window."""
        return self.start <= window_start and window_end <= self.end


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the rules may look at: chips by id, reports, and cluster declarations."""

    chips: Mapping[str, ChipFact]
    reports: Sequence[ReportFact]
    clusters: Sequence[DeclaredClusterFact]
