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

from sqlalchemy import DateTime, Table, TypeDecorator, bindparam, insert, update
from sqlalchemy.orm import Session

__all__ = ["bulk_insert", "bulk_update"]


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


def _check_columns(table: Table, columns: Sequence[str]) -> None:
    unknown = set(columns) - set(table.c.keys())
    if unknown:  # statement texts are built from these names
        msg = f"{table.name} has no columns {sorted(unknown)}"
        raise ValueError(msg)


def _sqlite_rows(table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Value tuples in ``columns`` order, datetime columns converted as SQLAlchemy stores them.

    A batch repeats few distinct datetimes (one window's bounds, one receive time), so each is
    converted once per call.
    """
    dated = [i for i, c in enumerate(columns) if _is_datetime(table, c)]
    converted: dict[datetime, str] = {}
    values = []
    for row in rows:
        value = [row[c] for c in columns]
        for i in dated:
            v = value[i]
            if v is not None:
                text = converted.get(v)
                if text is None:
                    text = converted[v] = _sqlite_value(v)
                value[i] = text
        values.append(tuple(value))
    return values


def bulk_update(session: Session, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """``UPDATE table SET <other columns> WHERE key = ...`` for each row, in one driver call.

    Every row names ``key`` and the same other columns; each key appears once. Below
    SQLAlchemy's per-row ORM bookkeeping: on SQLite one driver ``executemany``, on PostgreSQL
    one ``UPDATE ... FROM unnest(<one array per column>)``; elsewhere SQLAlchemy's.
    """
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    _check_columns(table, [*columns, key])
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        session.execute(
            update(table).where(table.c[key] == bindparam(f"_{key}")),
            [{**{c: r[c] for c in columns}, f"_{key}": r[key]} for r in rows],
        )
        return
    order = [*columns, key]
    if dialect == "postgresql":
        # One statement over one array per column (unnest), not one UPDATE per row: the
        # server plans it once and the driver sends a handful of parameters. The arrays go in
        # binary (%b): psycopg's text dumping of a list costs 1-7 us per element, binary 0.25.
        arrays = ", ".join(
            f"%b::{table.c[c].type.compile(dialect=connection.dialect)}[]" for c in order
        )
        names = ", ".join(f'"{c}"' for c in order)
        sets = ", ".join(f'"{c}" = v."{c}"' for c in columns)
        connection.exec_driver_sql(
            f'UPDATE "{table.name}" AS t SET {sets} FROM unnest({arrays}) AS v({names}) '  # noqa: S608 (checked names)
            f'WHERE t."{key}" = v."{key}"',
            (*([r[c] for r in rows] for c in order),),
        )
        return
    sets = ", ".join(f'"{c}" = ?' for c in columns)
    sql = f'UPDATE "{table.name}" SET {sets} WHERE "{key}" = ?'  # noqa: S608 (checked names)
    connection.exec_driver_sql(sql, _sqlite_rows(table, order, rows))


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, all columns named) into ``table``."""
    if not rows:
        return
    columns = list(rows[0])
    _check_columns(table, columns)
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
        connection.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})',  # noqa: S608 (checked names)
            _sqlite_rows(table, columns, rows),
        )
    else:
        session.execute(insert(table), list(rows))
