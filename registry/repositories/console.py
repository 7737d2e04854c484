"""Console sessions and the record of who read what."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from registry.db.models import ApiToken, ConsoleSession, ReadAccess

__all__ = ["ConsoleRepository"]


class ConsoleRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, obj: ConsoleSession | ReadAccess) -> None:
        self.session.add(obj)
        self.session.flush()

    def live_session(self, id_hash: str, now: datetime) -> tuple[ConsoleSession, ApiToken] | None:
        """The unexpired session with this id hash and its token, if the token is not revoked."""
        row = self.session.execute(
            select(ConsoleSession, ApiToken)
            .join(ApiToken, ApiToken.id == ConsoleSession.token_id)
            .where(
                ConsoleSession.id_hash == id_hash,
                ConsoleSession.expires_at > now,
                ApiToken.revoked_at.is_(None),
            )
        ).first()
        return None if row is None else (row[0], row[1])

    def end(self, id_hash: str) -> None:
        self.session.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == id_hash))

    def purge_expired(self, now: datetime) -> None:
        self.session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))

    def accesses(
        self, *, token_id: int | None, limit: int, offset: int
    ) -> tuple[list[ReadAccess], int]:
        stmt = select(ReadAccess)
        if token_id is not None:
            stmt = stmt.where(ReadAccess.token_id == token_id)
        total = int(self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
        rows = self.session.scalars(stmt.order_by(ReadAccess.id.desc()).limit(limit).offset(offset))
        return list(rows), total
