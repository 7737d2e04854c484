"""Durable on-disk spool of signed reports waiting for the registry.

A report is spooled before the chain state moves past it, and leaves the spool only when the
registry acknowledges it (or rejects it for good, in which case it is kept in ``rejected/``
with the reason). So an outage, a crash or a restart never loses a report.

File names are ``<chip_id>.<seq:012d>.json`` with the chip id percent-encoded: chip ids may
contain ``:``, which some filesystems (and tools that split on it) do not accept.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

from agents.errors import SpoolError
from attestation.errors import FormatError
from attestation.identity import validate_chip_id

__all__ = ["Spool", "SpoolItem"]

_SUFFIX = ".json"
_ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True)
class SpoolItem:
    """One spooled envelope: the chip, its sequence number and where the bytes live."""

    chip_id: str
    seq: int
    path: Path

    def read(self) -> bytes:
        """The exact envelope bytes that were spooled."""
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise SpoolError(f"cannot read spooled report {self.path}: {exc}") from exc


def _file_name(chip_id: str, seq: int) -> str:
    # quote() leaves [A-Za-z0-9._-] alone and encodes ':' as %3A; '%' itself is not a chip id
    # character, so the encoding is reversible.
    return f"{quote(chip_id, safe='')}.{seq:012d}{_SUFFIX}"


def _parse_name(name: str) -> tuple[str, int] | None:
    if not name.endswith(_SUFFIX) or name.endswith(_ERROR_SUFFIX):
        return None
    # Chip ids may contain '.', so split from the right.
    parts = name[: -len(_SUFFIX)].rsplit(".", 1)
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    return unquote(parts[0]), int(parts[1])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    Temporary file in the same directory (``os.replace`` is only atomic within a filesystem),
    flushed and fsynced before the rename, directory fsynced after it so the rename survives a
    power cut.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SpoolError(f"cannot write {path}: {exc}") from exc
    if durable:
        _fsync_dir(path.parent)


class Spool:
    """A directory of signed envelopes waiting to be acknowledged by the registry.

    ``durable=False`` skips the fsyncs; only the simulator uses it, for speed on throwaway data.
    """

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.rejected_path = self.path / "rejected"
        self.durable = durable
        try:
            self.rejected_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {self.path}: {exc}") from exc

    def put(self, chip_id: str, seq: int, envelope_json: bytes) -> SpoolItem:
        """Durably store an envelope. Storing the same bytes twice is a no-op.

        Raises :class:`SpoolError` if a different envelope already holds this (chip, seq):
        overwriting it would mean signing two reports with one sequence number.
        """
        try:
            validate_chip_id(chip_id)
        except FormatError as exc:
            raise SpoolError(f"invalid chip id {chip_id!r}: {exc}") from exc
        if seq < 1:
            raise SpoolError(f"invalid sequence number {seq} for {chip_id}")
        target = self.path / _file_name(chip_id, seq)
        item = SpoolItem(chip_id=chip_id, seq=seq, path=target)
        for existing in (target, self.rejected_path / target.name):
            if existing.exists():
                if existing.read_bytes() == envelope_json:
                    return SpoolItem(chip_id=chip_id, seq=seq, path=existing)
                raise SpoolError(f"spool already holds a different report for {chip_id} seq {seq}")
        write_atomic(target, envelope_json, durable=self.durable)
        return item

    def _scan(self, directory: Path) -> list[tuple[int, SpoolItem]]:
        found: list[tuple[int, SpoolItem]] = []
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            raise SpoolError(f"cannot list spool directory {directory}: {exc}") from exc
        for entry in entries:
            parsed = _parse_name(entry.name)
            if parsed is None or not entry.is_file():
                continue
            try:
                mtime = entry.stat().st_mtime_ns
            except FileNotFoundError:
                continue  # acknowledged concurrently; nothing to send
            found.append((mtime, SpoolItem(parsed[0], parsed[1], Path(entry.path))))
        return found

    def pending(self, limit: int | None = None) -> list[SpoolItem]:
        """Spooled items, oldest first, and in sequence order within each chip.

        Modification times order items across chips; within a chip the sequence number wins
        (clock steps or coarse timestamps must never send seq n+1 before seq n).
        """
        found = self._scan(self.path)
        found.sort(key=lambda t: (t[0], t[1].chip_id, t[1].seq))
        ordered = [item for _, item in found]
        # Keep each chip's slots in the time order but fill them in seq order.
        by_chip: dict[str, list[SpoolItem]] = {}
        for item in ordered:
            by_chip.setdefault(item.chip_id, []).append(item)
        for items in by_chip.values():
            items.sort(key=lambda i: i.seq)
        cursor = dict.fromkeys(by_chip, 0)
        result: list[SpoolItem] = []
        for item in ordered:
            chip_items = by_chip[item.chip_id]
            result.append(chip_items[cursor[item.chip_id]])
            cursor[item.chip_id] += 1
        return result if limit is None else result[:limit]

    def ack(self, item: SpoolItem) -> None:
        """The registry acknowledged the report: forget it."""
        try:
            item.path.unlink(missing_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot remove acknowledged report {item.path}: {exc}") from exc

    def reject(self, item: SpoolItem, code: str, detail: str) -> SpoolItem:
        """Move a report the registry refused for good to ``rejected/``, with the reason."""
        target = self.rejected_path / item.path.name
        sidecar = self.rejected_path / (item.path.name[: -len(_SUFFIX)] + _ERROR_SUFFIX)
        error = {
            "chip_id": item.chip_id,
            "seq": item.seq,
            "code": code,
            "detail": detail,
            "rejected_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        write_atomic(sidecar, json.dumps(error, sort_keys=True).encode(), durable=self.durable)
        try:
            os.replace(item.path, target)
        except OSError as exc:
            raise SpoolError(f"cannot move rejected report {item.path}: {exc}") from exc
        if self.durable:
            _fsync_dir(self.rejected_path)
            _fsync_dir(self.path)
        return SpoolItem(chip_id=item.chip_id, seq=item.seq, path=target)

    def rejected(self) -> list[SpoolItem]:
        """Reports moved aside as rejected, in (chip, seq) order."""
        items = [item for _, item in self._scan(self.rejected_path)]
        return sorted(items, key=lambda i: (i.chip_id, i.seq))

    def latest_by_chip(self) -> dict[str, SpoolItem]:
        """For every chip in the spool, its highest-seq report (pending or rejected)."""
        best: dict[str, SpoolItem] = {}
        for directory in (self.path, self.rejected_path):
            for _, item in self._scan(directory):
                current = best.get(item.chip_id)
                if current is None or item.seq > current.seq:
                    best[item.chip_id] = item
        return best

    def latest(self, chip_id: str) -> SpoolItem | None:
        """The highest-seq report of ``chip_id`` still in the spool (pending or rejected)."""
        prefix = quote(chip_id, safe="") + "."
        best: SpoolItem | None = None
        for directory in (self.path, self.rejected_path):
            for entry_name in os.listdir(directory):
                if not entry_name.startswith(prefix):
                    continue
                parsed = _parse_name(entry_name)
                if parsed is None or parsed[0] != chip_id:
                    continue
                if best is None or parsed[1] > best.seq:
                    best = SpoolItem(chip_id, parsed[1], directory / entry_name)
        return best
