"""Bulk inserts on the ingest path, below SQLAlchemy's per-value bind processing.

PostgreSQL: ``COPY ... FROM STDIN`` through psycopg (about 5x SQLAlchemy's list-of-dicts
``INSERT``). SQLite: one driver-level ``executemany`` with values already in the form SQLAlchemy
would store (UTC datetimes as naive ``YYYY-MM-DD HH:MM:SS.ffffff`` text, as
:class:`registry.db.base.UTCDateTime` and SQLite's ``DATETIME`` type write them), so rows read
back exactly as if the ORM had written them. Anything else falls back to SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Table, TypeDecorator, insert
from sqlalchemy.orm import Session

__all__ = ["bulk_insert"]


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # None stays None
        if value.tzinfo is None:
            msg = "naive datetime given to a UTC column"
            raise ValueError(msg)
        v = value.astimezone(UTC)
        return (
            f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
            f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
        )
    return value


def _is_datetime(table: Table, column: str) -> bool:
    column_type = table.c[column].type
    return isinstance(column_type, TypeDecorator | DateTime) and isinstance(
        getattr(column_type, "impl", column_type), DateTime
    )


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, all columns named) into ``table``."""
    if not rows:
        return
    columns = list(rows[0])
    unknown = set(columns) - set(table.c.keys())
    if unknown:  # the statement text below is built from these names
        msg = f"{table.name} has no columns {sorted(unknown)}"
        raise ValueError(msg)
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        raw: Any = connection.connection.driver_connection
        names = ", ".join(f'"{c}"' for c in columns)
        with (
            raw.cursor() as cursor,
            cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
        ):
            for row in rows:
                copy.write_row([row[c] for c in columns])
    elif dialect == "sqlite":
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        # Only datetime columns need converting; the others go to the driver as they are.
        dated = [i for i, c in enumerate(columns) if _is_datetime(table, c)]
        values = []
        for row in rows:
            value = [row[c] for c in columns]
            for i in dated:
                value[i] = _sqlite_value(value[i])
            values.append(tuple(value))
        connection.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})',  # noqa: S608 (checked names)
            values,
        )
    else:
        session.execute(insert(table), list(rows))
