"""The Alembic migrations, on SQLite and PostgreSQL: they build exactly the schema the models
declare, seed the empty log, are idempotent, and run down and up again."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, MetaData, inspect, select, text

from registry.db import models
from registry.db.base import Base
from registry.db.engine import make_engine
from registry.db.migrate import alembic_config, head_revision, is_current, upgrade

MODEL_TABLES = set(Base.metadata.tables)
EMPTY_ROOT = hashlib.sha256(b"").digest()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def downgrade(engine: Engine, revision: str = "base") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def log_states(engine: Engine) -> list[tuple[int, int, bytes, bytes]]:
    state = models.LogState
    with engine.connect() as connection:
        rows = connection.execute(
            select(state.id, state.size, state.compact_range, state.root_hash)
        ).all()
    return [(r.id, r.size, bytes(r.compact_range), bytes(r.root_hash)) for r in rows]


def schema_diffs(engine: Engine, metadata: MetaData) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def assert_fresh_schema(engine: Engine) -> None:
    assert tables(engine) == MODEL_TABLES | {"alembic_version"}
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert current_revision(engine) == head
    assert log_states(engine) == [(1, 0, b"", EMPTY_ROOT)]


def test_upgrade_creates_every_model_table_and_the_empty_log(engine: Engine) -> None:
    assert tables(engine) == set()
    upgrade(engine)
    assert_fresh_schema(engine)


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO operators (name, country, public_key, created_at) "
                "VALUES ('Abilene Compute', 'US', 'k', CURRENT_TIMESTAMP)"
            )
        )
    upgrade(engine)
    assert_fresh_schema(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM operators")).scalars().all() == [
            "Abilene Compute"
        ]


def test_downgrade_to_base_then_upgrade_again(engine: Engine) -> None:
    upgrade(engine)
    downgrade(engine)
    assert tables(engine) <= {"alembic_version"}
    assert current_revision(engine) is None
    upgrade(engine)
    assert_fresh_schema(engine)


def test_models_and_migrations_agree(engine: Engine) -> None:
    # A model change without a migration shows up here as a difference.
    upgrade(engine)
    assert schema_diffs(engine, Base.metadata) == []


def test_model_drift_would_be_detected(engine: Engine) -> None:
    """Guards the guard: the comparison above must see a column the migrations lack."""
    upgrade(engine)
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        copy = table.to_metadata(drifted)
        if table.name == "operators":
            copy.append_column(Column("headcount", Integer, nullable=True))
    diffs = schema_diffs(engine, drifted)
    assert [(d[0], d[2], d[3].name) for d in diffs if isinstance(d, tuple)] == [
        ("add_column", "operators", "headcount")
    ]


def test_the_head_read_without_alembic_is_alembics() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_a_schema_one_revision_behind_is_still_migrated(engine: Engine) -> None:
    """upgrade() skips Alembic only when the database is exactly at head."""
    upgrade(engine)
    assert is_current(engine)
    downgrade(engine, "-1")
    assert not is_current(engine)
    upgrade(engine)
    assert is_current(engine)
    assert_fresh_schema(engine)


def test_an_empty_database_is_not_current(engine: Engine) -> None:
    assert not is_current(engine)


def _versions(tmp_path: Path, *files: str) -> Path:
    for number, body in enumerate(files):
        (tmp_path / f"{number:04d}_m.py").write_text(body)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "head"),
    [
        (['revision = "a"\ndown_revision = None', 'revision = "b"\ndown_revision = "a"'], "b"),
        (['revision: str = "a"\ndown_revision: str | None = None'], "a"),
        (
            [
                'revision = "a"\ndown_revision = None',
                'revision = "b"\ndown_revision = "a"',
                'revision = "c"\ndown_revision = "a"',
                'revision = "m"\ndown_revision = ("b", "c")',
            ],
            "m",
        ),
        # Anything Alembic must judge: two heads, a reused id, a computed value, depends_on.
        (['revision = "a"\ndown_revision = None', 'revision = "b"\ndown_revision = None'], None),
        (['revision = "a"\ndown_revision = None', 'revision = "a"\ndown_revision = None'], None),
        (['revision = "a" + "b"\ndown_revision = None'], None),
        (['revision = "a"\ndown_revision = NAME'], None),
        (['revision = "a"'], None),
        (['revision = "a"\ndown_revision = None\ndepends_on = "x"'], None),
    ],
)
def test_head_revision_defers_to_alembic_when_unsure(
    tmp_path: Path, files: list[str], head: str | None
) -> None:
    assert head_revision(_versions(tmp_path, *files)) == head
