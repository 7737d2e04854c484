"""Engine and session factories, with the durability settings each backend needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "make_session_factory", "session_scope"]


def make_engine(database_url: str, *, sqlite_busy_timeout_ms: int = 30_000) -> Engine:
    """Create an engine; SQLite gets WAL with full fsync so an acknowledged commit is durable."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        file_db = bool(url.database) and url.database != ":memory:"
        if file_db:
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout_ms / 1000},
            # Keep as many connections as a worker has requests in flight (its thread pool
            # runs up to 40): past pool_size, SQLAlchemy closes returned connections and opens
            # new ones, each with the pragmas below.
            **({"pool_size": 40, "max_overflow": 10} if file_db else {}),
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is fsynced before it returns; NORMAL could lose the last
            # acknowledged transactions on power loss.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
            cursor.close()

        return engine
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextmanager
def session_scope(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit when the block ends normally, roll back on any exception.

    The one owner of commits: the request scope (``registry.api.deps.get_session``), each step
    of a background worker (``registry.workers``) and the CLI's commands open one of these;
    repositories and services never commit.
    """
    session = sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
