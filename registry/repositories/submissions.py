"""Signed-but-rejected report submissions, kept (bounded) as evidence for clone/replay rules."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from registry.db.models import RejectedSubmission

__all__ = ["SubmissionRepository"]


class SubmissionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_many(self, rows: Sequence[dict[str, Any]], *, keep: int) -> None:
        """Insert rows, then drop the oldest beyond the newest ``keep``."""
        if not rows:
            return
        self.session.execute(insert(RejectedSubmission), list(rows))
        newest = self.session.scalar(select(func.max(RejectedSubmission.id)))
        if newest is not None and newest > keep:
            self.session.execute(
                delete(RejectedSubmission).where(RejectedSubmission.id <= newest - keep)
            )

    def kept_once(
        self, digests: Collection[str], outcomes: Collection[str]
    ) -> set[tuple[str, int | None, str]]:
        """``(digest, delivering operator, outcome)`` of the submissions already kept among
        ``digests`` with one of ``outcomes`` (those kept at most once per operator)."""
        if not digests:
            return set()
        rows = self.session.execute(
            select(
                RejectedSubmission.digest,
                RejectedSubmission.source_operator_id,
                RejectedSubmission.outcome,
            ).where(
                RejectedSubmission.digest.in_(sorted(set(digests))),
                RejectedSubmission.outcome.in_(sorted(outcomes)),
            )
        )
        return {(d, o, c) for d, o, c in rows}

    def in_period(self, start: datetime | None, end: datetime | None) -> list[RejectedSubmission]:
        stmt = select(RejectedSubmission).order_by(RejectedSubmission.id)
        if start is not None:
            stmt = stmt.where(RejectedSubmission.window_end > start)
        if end is not None:
            stmt = stmt.where(RejectedSubmission.received_at < end)
        return list(self.session.scalars(stmt))
