"""The ingest path's bulk writes below SQLAlchemy, on SQLite and PostgreSQL: rows read back
through the ORM exactly as if the ORM had written them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from registry.db.engine import make_engine
from registry.db.migrate import upgrade
from registry.db.models import Chip, Vendor
from registry.repositories.bulk import bulk_update
from registry.repositories.chips import ChipRepository

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def chip(n: int) -> dict[str, object]:
    return {
        "chip_id": f"C-{n}",
        "vendor_id": 1,
        "model": "H100",
        "public_key": bytes([n]) * 32,
        "key_id": f"k{n}",
        "certificate_pem": "-",
        "certificate_fingerprint": "f",
        "peak_tflops_bf16": 989.0,
        "tdp_watts": 700.0,
        "enrolled_at": AT,
    }


def heads(session: Session) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in session.execute(
            select(
                Chip.chip_id, Chip.last_seq, Chip.last_digest, Chip.last_window_end, Chip.model
            ).order_by(Chip.chip_id)
        )
    ]


def test_bulk_update_moves_only_the_named_rows_and_columns(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(
            Vendor(id=1, name="V", root_certificate_pem="-", fingerprint="f", created_at=AT)
        )
        session.flush()
        ChipRepository(session).insert_many([chip(n) for n in range(4)])
        session.commit()
    rows = [
        {"chip_id": "C-2", "last_seq": 2**40, "last_digest": "b" * 64, "last_window_end": AT},
        {
            "chip_id": "C-0",
            "last_seq": 7,
            "last_digest": "a" * 64,
            "last_window_end": AT + timedelta(minutes=15),
        },
        {"chip_id": "C-3", "last_seq": 1, "last_digest": "c" * 64, "last_window_end": None},
    ]
    with Session(engine) as session:
        bulk_update(session, Chip.__table__, "chip_id", rows)  # type: ignore[arg-type]
        session.commit()
    genesis = Chip.__table__.c.last_digest.default.arg  # type: ignore[attr-defined]
    with Session(engine) as session:
        assert heads(session) == [
            ("C-0", 7, "a" * 64, AT + timedelta(minutes=15), "H100"),
            ("C-1", 0, genesis, None, "H100"),
            ("C-2", 2**40, "b" * 64, AT, "H100"),
            ("C-3", 1, "c" * 64, None, "H100"),
        ]
    # A column that is None in every row (PostgreSQL: an array of NULLs of the column's type).
    with Session(engine) as session:
        bulk_update(
            session,
            Chip.__table__,  # type: ignore[arg-type]
            "chip_id",
            [{"chip_id": "C-2", "last_window_end": None}],
        )
        session.commit()
        assert heads(session)[2] == ("C-2", 2**40, "b" * 64, None, "H100")
    with Session(engine) as session, pytest.raises(ValueError, match="no columns"):
        bulk_update(session, Chip.__table__, "chip_id", [{"chip_id": "C-1", "nope": 1}])  # type: ignore[arg-type]
