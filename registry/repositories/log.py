"""The Merkle log's rows: entries and the single tree-head row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.db.models import LogEntry, LogState
from registry.repositories.bulk import bulk_insert

__all__ = ["LogRepository"]

STATE_ID = 1


class LogRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_state(self) -> LogState:
        """Take the log's write lock for this transaction and return the tree head.

        Appends are serialised here. On SQLite a write must come first so the transaction
        holds the database write lock before it reads (upgrading a read lock later can fail
        with SQLITE_BUSY instead of waiting).
        """
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(
                text("UPDATE log_state SET id = id WHERE id = :id"), {"id": STATE_ID}
            )
            state = self.session.get(LogState, STATE_ID, populate_existing=True)
        else:
            state = self.session.get(
                LogState, STATE_ID, with_for_update=True, populate_existing=True
            )
        if state is None:
            msg = "log_state row missing: run the migrations"
            raise RuntimeError(msg)
        return state

    def state(self) -> LogState | None:
        return self.session.get(LogState, STATE_ID)

    def insert_entries(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert log entries in bulk (COPY on PostgreSQL); every row names every column."""
        bulk_insert(self.session, LogEntry.__table__, rows)  # type: ignore[arg-type]

    def leaf_hashes(self, end: int) -> list[bytes]:
        """Leaf hashes of entries [0, end) in order."""
        rows = self.session.execute(
            select(LogEntry.leaf_hash).where(LogEntry.index < end).order_by(LogEntry.index)
        )
        return [bytes(r[0]) for r in rows]

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
