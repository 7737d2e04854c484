"""The Merkle log's rows: entries, the tree-head row, tiles, checkpoints and cosignatures."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.db.models import (
    LogCheckpoint,
    LogCosignature,
    LogEntry,
    LogSequence,
    LogState,
    LogTile,
    Report,
)
from registry.repositories.bulk import bulk_insert

_Row = TypeVar("_Row", LogState, LogSequence)

__all__ = ["LogRepository"]

STATE_ID = 1


class LogRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_state(self) -> LogState:
        """Take the log's write lock for this transaction and return the tree head.

        Appends are serialised here. On SQLite a write must come first so the transaction
        holds the database write lock before it reads (upgrading a read lock later can fail
        with SQLITE_BUSY instead of waiting). Pending changes are flushed first, so a second
        appender in the same transaction sees the head the first one moved.
        """
        return self._lock_row(LogState)

    def state(self) -> LogState | None:
        return self.session.get(LogState, STATE_ID)

    def _lock_row(self, model: type[_Row]) -> _Row:
        """Lock the one row of ``model`` for this transaction (flushing pending changes first)
        and return it as stored. On SQLite a write comes first, so the transaction holds the
        database write lock before it reads (upgrading a read lock later can fail with
        SQLITE_BUSY instead of waiting)."""
        self.session.flush()
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(
                update(model)
                .where(model.id == STATE_ID)
                .values(id=model.id)
                .execution_options(synchronize_session=False)
            )
            row = self.session.get(model, STATE_ID, populate_existing=True)
        else:
            row = self.session.get(model, STATE_ID, with_for_update=True, populate_existing=True)
        if row is None:
            msg = f"{model.__tablename__} row missing: run the migrations"
            raise RuntimeError(msg)
        return row

    def lock_sequence(self) -> LogSequence:
        """Take the sequencing lock for this transaction and return the sequenced size's row.

        Appends are serialised here, not on the tree head (the integrator's row), so
        integrating never waits for a writer nor a writer for the integrator (PostgreSQL
        locks rows; SQLite has one writer at a time anyway). On SQLite a write comes first,
        as in :meth:`lock_state`.
        """
        return self._lock_row(LogSequence)

    def sequenced_size(self) -> int:
        """The number of sequenced entries, as committed (no lock)."""
        size = self.session.scalar(select(LogSequence.size).where(LogSequence.id == STATE_ID))
        return int(size or 0)

    def only_kinds(self, start: int, end: int, kinds: Collection[str]) -> bool:
        """Whether every entry in ``[start, end)`` is of one of ``kinds``."""
        other = self.session.scalar(
            select(LogEntry.index)
            .where(LogEntry.index >= start, LogEntry.index < end, LogEntry.kind.not_in(kinds))
            .limit(1)
        )
        return other is None

    def leaf_hashes_between(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries [start, end) in order."""
        rows = self.session.execute(
            select(LogEntry.leaf_hash)
            .where(LogEntry.index >= start, LogEntry.index < end)
            .order_by(LogEntry.index)
        )
        return [bytes(r[0]) for r in rows]

    def insert_entries(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert log entries in bulk (COPY on PostgreSQL); every row names every column."""
        bulk_insert(self.session, LogEntry.__table__, rows)  # type: ignore[arg-type]

    def index_of_leaf(self, leaf_hash: bytes) -> int | None:
        return self.session.scalar(
            select(LogEntry.index).where(LogEntry.leaf_hash == leaf_hash).order_by(LogEntry.index)
        )

    def entries(self, start: int, end: int) -> list[LogEntry]:
        return list(
            self.session.scalars(
                select(LogEntry)
                .where(LogEntry.index >= start, LogEntry.index < end)
                .order_by(LogEntry.index)
            )
        )

    def entries_of_kinds(self, kinds: Collection[str], below: int) -> list[tuple[int, str, bytes]]:
        """``(index, kind, body)`` of every entry of ``kinds`` below ``below``, in log order.

        A scan (there is no index on kind): for exports, not for request hot paths.
        """
        rows = self.session.execute(
            select(LogEntry.index, LogEntry.kind, LogEntry.body)
            .where(LogEntry.kind.in_(list(kinds)), LogEntry.index < below)
            .order_by(LogEntry.index)
        )
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    def entries_at(self, indexes: Collection[int]) -> list[LogEntry]:
        """The entries with the given indexes, in log order."""
        out: list[LogEntry] = []
        ordered = sorted(indexes)
        for i in range(0, len(ordered), 1000):
            chunk = ordered[i : i + 1000]
            out.extend(
                self.session.scalars(
                    select(LogEntry).where(LogEntry.index.in_(chunk)).order_by(LogEntry.index)
                )
            )
        return out

    def report_indexes(
        self, chip_ids: Collection[str], start: datetime | None, end: datetime | None
    ) -> list[int]:
        """Log indexes of the reports of ``chip_ids`` whose window overlaps ``[start, end)``."""
        out: list[int] = []
        ids = sorted(chip_ids)
        for i in range(0, len(ids), 1000):
            stmt = select(Report.log_index).where(Report.chip_id.in_(ids[i : i + 1000]))
            if start is not None:
                stmt = stmt.where(Report.window_end > start)
            if end is not None:
                stmt = stmt.where(Report.window_start < end)
            out.extend(int(r) for r in self.session.scalars(stmt))
        return sorted(out)

    def entry_kinds(self, start: int, end: int) -> list[tuple[int, str]]:
        rows = self.session.execute(
            select(LogEntry.index, LogEntry.kind)
            .where(LogEntry.index >= start, LogEntry.index < end)
            .order_by(LogEntry.index)
        )
        return [(r[0], r[1]) for r in rows]

    # -- tiles ---------------------------------------------------------------------------
    def tiles(self, ids: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored tiles among ``ids`` (one query)."""
        if not ids:
            return {}
        cond = or_(*(and_(LogTile.level == lvl, LogTile.index == idx) for lvl, idx in ids))
        rows = self.session.execute(
            select(LogTile.level, LogTile.index, LogTile.hashes).where(cond)
        )
        return {(r[0], r[1]): bytes(r[2]) for r in rows}

    def put_tiles(self, tiles: Mapping[tuple[int, int], bytes]) -> None:
        """Insert or overwrite tiles (a partial tile grows until it is full)."""
        if not tiles:
            return
        rows = [{"level": lvl, "index": idx, "hashes": b} for (lvl, idx), b in tiles.items()]
        dialect = self.session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(LogTile)
        stmt = stmt.on_conflict_do_update(
            index_elements=[LogTile.level, LogTile.index], set_={"hashes": stmt.excluded.hashes}
        )
        self.session.execute(stmt, rows)

    # -- checkpoints and cosignatures ------------------------------------------------------
    def latest_checkpoint(self) -> LogCheckpoint | None:
        return self.session.scalar(select(LogCheckpoint).order_by(LogCheckpoint.size.desc()))

    def checkpoint(self, size: int) -> LogCheckpoint | None:
        return self.session.get(LogCheckpoint, size)

    def add_checkpoint(self, size: int, root_hash: bytes, note: str, at: datetime) -> bool:
        """Store a signed checkpoint; False if one of this size exists (another worker won)."""
        dialect = self.session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(LogCheckpoint)
        result = self.session.execute(
            stmt.values(size=size, root_hash=root_hash, note=note, created_at=at)
            .on_conflict_do_nothing(index_elements=[LogCheckpoint.size])
            .returning(LogCheckpoint.size)
        )
        return result.first() is not None

    def cosignatures(self, size: int) -> list[LogCosignature]:
        return list(
            self.session.scalars(
                select(LogCosignature)
                .where(LogCosignature.size == size)
                .order_by(LogCosignature.witness)
            )
        )

    def add_cosignature(self, size: int, witness: str, line: str, at: datetime) -> None:
        self.session.add(LogCosignature(size=size, witness=witness, line=line, created_at=at))

    def witness_sizes(self) -> dict[str, int]:
        """The largest checkpoint size each witness cosigned."""
        rows = self.session.execute(
            select(LogCosignature.witness, func.max(LogCosignature.size)).group_by(
                LogCosignature.witness
            )
        )
        return {r[0]: int(r[1]) for r in rows}
