"""The transparency log: entries, its state, tiles, checkpoints and witness cosignatures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base, UTCDateTime

__all__ = [
    "NOT_A_REPORT",
    "LogCheckpoint",
    "LogCosignature",
    "LogEntry",
    "LogSequence",
    "LogState",
    "LogTile",
]

# The predicate of the log's partial index by kind (every kind but the ingest path's reports).
NOT_A_REPORT = "kind <> 'usage_report'"


class LogEntry(Base):
    """One leaf of the append-only Merkle log: the exact bytes it commits to."""

    __tablename__ = "log_entries"
    __table_args__ = (
        Index("ix_log_entries_leaf_hash", "leaf_hash"),
        # The newest entry of a kind (the overview's last verifier run) by a seek; usage
        # reports are left out, so ingest's appends never write to it.
        Index(
            "ix_log_entries_kind_index",
            "kind",
            "index",
            sqlite_where=text(NOT_A_REPORT),
            postgresql_where=text(NOT_A_REPORT),
        ),
    )

    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogState(Base):
    """The log's integrated tree head: size and the compact range (right-edge subtree hashes).

    Entries sequenced beyond ``size`` (``LogSequence``) are stored but not in the tree yet."""

    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    compact_range: Mapped[bytes] = mapped_column(LargeBinary)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogSequence(Base):
    """The sequenced pool's size: entries ``[0, size)`` have their index and are durable; the
    integrator folds them into the tree (``LogState``) after the acknowledgement."""

    __tablename__ = "log_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogTile(Base):
    """One C2SP tlog-tiles tile: up to 256 hashes of level ``level`` (rewritten while partial)."""

    __tablename__ = "log_tiles"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpoint(Base):
    """A checkpoint the publisher signed: the exact signed note, log signature only."""

    __tablename__ = "log_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogCosignature(Base):
    """A witness's C2SP tlog-cosignature line over one stored checkpoint."""

    __tablename__ = "log_cosignatures"

    size: Mapped[int] = mapped_column(
        ForeignKey("log_checkpoints.size"), primary_key=True, autoincrement=False
    )
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
