"""The read totals' roll-up step (:meth:`registry.services.rollup.ReadTotals.roll_up`) in its
own transaction: REPEATABLE READ on PostgreSQL, so the step's reads see one snapshot of the
reports and the installations (on SQLite the step holds the write lock from its first read)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from registry.db.engine import session_scope
from registry.services.rollup import ReadTotals, RollupResult

__all__ = ["roll_up_totals"]


def roll_up_totals(sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> RollupResult:
    """Roll the reports accepted since the last step into the running totals, and commit."""
    with session_scope(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return ReadTotals(session, clock).roll_up()
