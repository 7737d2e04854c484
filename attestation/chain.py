"""The chain rule, once: whether a chip's signed report continues its hash chain, and the one
set of per-report rejection codes (docs/PROTOCOL.md 4.2, a contract: the values are the wire
codes).

The registry's ingest (``registry/services/ingest.py``), the partner's audit replaying the log
(``audit/replay.py``), the fleet simulator and the host agent's client all use these, so a
report one of them takes the others take too. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from attestation.report import UsageReport

__all__ = ["ChainHead", "RejectionCode", "judge"]


class RejectionCode(StrEnum):
    """Why the registry refused one report of a batch (docs/PROTOCOL.md 4.2), in check order."""

    MALFORMED_REPORT = "malformed_report"
    UNKNOWN_CHIP = "unknown_chip"
    BAD_SIGNATURE = "bad_signature"
    KEY_MISMATCH = "key_mismatch"
    CHIP_REVOKED = "chip_revoked"
    CHIP_DECOMMISSIONED = "chip_decommissioned"
    WINDOW_IN_FUTURE = "window_in_future"
    CHIP_NOT_INSTALLED = "chip_not_installed"
    FORBIDDEN = "forbidden"
    UNKNOWN_FACILITY = "unknown_facility"
    WINDOW_BEFORE_INSTALLATION = "window_before_installation"
    REPLAYED_REPORT = "replayed_report"
    SEQUENCE_REUSED = "sequence_reused"
    SEQUENCE_GAP = "sequence_gap"
    BROKEN_HASH_CHAIN = "broken_hash_chain"
    WINDOW_OUT_OF_ORDER = "window_out_of_order"


class ChainHead(Protocol):
    """A chip's last accepted report: its ``seq`` (0 before the first), ``digest`` (the
    genesis digest before the first) and ``window_end`` (``None`` before the first)."""

    @property
    def seq(self) -> int: ...

    @property
    def digest(self) -> str: ...

    @property
    def window_end(self) -> datetime | None: ...


def judge(
    head: ChainHead,
    report: UsageReport,
    digest: str,
    accepted_digest: Callable[[int], str | None],
) -> RejectionCode | None:
    """``None`` when ``report`` (whose digest is ``digest``) is the next link of the chain
    ending at ``head``; otherwise the chain code that refuses it. ``accepted_digest(seq)`` gives
    the digest of the chip's accepted report with an earlier ``seq`` (asked only for a replay
    or a reuse, so a caller may look it up lazily)."""
    seq = report.seq
    if seq <= head.seq:
        stored = head.digest if seq == head.seq else accepted_digest(seq)
        if stored == digest:
            return RejectionCode.REPLAYED_REPORT
        return RejectionCode.SEQUENCE_REUSED
    if seq != head.seq + 1:
        return RejectionCode.SEQUENCE_GAP
    if report.prev_digest != head.digest:
        return RejectionCode.BROKEN_HASH_CHAIN
    if head.window_end is not None and report.window_start < head.window_end:
        return RejectionCode.WINDOW_OUT_OF_ORDER
    return None
