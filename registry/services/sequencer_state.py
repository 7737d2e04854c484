"""What one process's ingest keeps in memory between requests: the chip keys it has parsed
(:class:`KeyCache`, shared by the request threads) and the sequencer's view of the chips it has
seen (:class:`SequencerState`, the writer thread's). Plain values, no I/O: the writer reads and
writes the database (:mod:`registry.services.ingest`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from attestation.keys import PublicKey
from registry.repositories.chips import ChipIngestState

__all__ = ["HeadTuple", "KeyCache", "SequencerState"]

# A chip's chain head: (last seq, last digest, last window end, last log index).
HeadTuple = tuple[int, str, datetime | None, int | None]


class KeyCache:
    """Parsed chip keys by chip id, per process. A chip's key never changes after enrollment.

    Only keys are cached: custody and chain heads are read under the log lock at commit time.
    Plain dict operations are atomic under the GIL, so request threads share it without a lock.
    """

    def __init__(self, max_entries: int = 2_000_000) -> None:
        self.max_entries = max_entries
        self._keys: dict[str, PublicKey] = {}

    def get(self, chip_id: str) -> PublicKey | None:
        return self._keys.get(chip_id)

    def put(self, chip_id: str, key: PublicKey) -> None:
        if len(self._keys) >= self.max_entries:
            self._keys.clear()
        self._keys[chip_id] = key

    def __len__(self) -> int:
        return len(self._keys)


class SequencerState:
    """What one process's sequencer keeps between groups: the ingest state (chain head,
    custody, status) of the chips it has seen and the facilities it knows exist.

    Valid while nothing else wrote to the log: every change to a chip's custody or status is
    logged in its own transaction, under the same sequencing lock, so the log's sequenced size
    is a generation counter. ``size`` is the sequenced size this process's last commit left;
    if the size found under the lock differs, another writer appended in between. If all it
    appended were reports (and rejected reports), the heads they moved are read from those
    report rows (:meth:`IngestService.commit`: another worker process's groups, the common
    case with several workers); anything else (a declaration, a status change) drops the
    chips, and they are read again. Used by the writer thread only; :meth:`committed` after
    the transaction commits, :meth:`invalidate` if it failed.
    """

    def __init__(self, max_chips: int = 2_000_000, max_catch_up: int = 65_536) -> None:
        self.max_chips = max_chips
        self.max_catch_up = max_catch_up
        # The chips as read; their chain heads as moved since, by chip id (plain tuples: a
        # group moves thousands, and building a new chip state per head costs more).
        self.chips: dict[str, ChipIngestState] = {}
        self.heads: dict[str, HeadTuple] = {}
        self.facilities: set[int] = set()
        self.size: int | None = None
        self._staged: tuple[dict[str, HeadTuple], int] | None = None
        # How often the chips were read again, or caught up from another writer's reports.
        self.reloads = 0
        self.catch_ups = 0

    def behind(self, size: int) -> bool:
        """Whether only another writer's few entries separate the kept chips from ``size``."""
        return (
            self.size is not None and bool(self.chips) and 0 < size - self.size <= self.max_catch_up
        )

    def catch_up(self, heads: Sequence[tuple[str, int, str, datetime, int]], size: int) -> None:
        """Apply the chain heads another writer's reports moved, up to ``size``."""
        chips, kept = self.chips, self.heads
        for chip_id, seq, digest, window_end, log_index in heads:
            if chip_id in chips:
                kept[chip_id] = (seq, digest, window_end, log_index)
        self.size = size
        self.catch_ups += 1

    def validate(self, size: int) -> None:
        """Drop what another writer may have changed since this process's last commit."""
        if self.size != size:
            if self.chips:
                self.reloads += 1
            self.chips.clear()
            self.heads.clear()
        self.size = size

    def head(self, chip: ChipIngestState) -> HeadTuple:
        """The chip's chain head: as moved since it was read, or as read."""
        kept = self.heads.get(chip.chip_id)
        if kept is not None:
            return kept
        return (chip.last_seq, chip.last_digest, chip.last_window_end, chip.last_log_index)

    def load(self, chips: dict[str, ChipIngestState]) -> None:
        """Keep chips just read (current: no head of theirs kept from before applies)."""
        if len(self.chips) + len(chips) > self.max_chips:
            self.chips.clear()
            self.heads.clear()
        for chip_id in chips:
            self.heads.pop(chip_id, None)
        self.chips.update(chips)

    def stage(self, heads: dict[str, HeadTuple], size: int) -> None:
        self._staged = (heads, size)

    def committed(self) -> None:
        if self._staged is not None:
            heads, size = self._staged
            self.heads.update(heads)
            self.size = size
            self._staged = None

    def invalidate(self) -> None:
        self.chips.clear()
        self.heads.clear()
        self.size = None
        self._staged = None
