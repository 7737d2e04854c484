"""Apply the Alembic migrations shipped inside the package (``registry/migrations``).

Alembic is imported when a migration runs, not with this module: API worker processes import
the app (and this module) but never migrate, and every import delays a worker's start. On the
common start of a registry whose schema is already current, :func:`upgrade` does not import
Alembic at all: it reads the head revision from the migration files (their literal
``revision``/``down_revision`` assignments) and the database's ``alembic_version`` row, and asks
Alembic only when they differ or the files do not say it plainly.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine

__all__ = ["alembic_config", "head_revision", "is_current", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_NAMES = ("revision", "down_revision", "depends_on")
_OPAQUE = object()  # an assignment that is not a plain literal


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _literal_assignments(path: Path) -> dict[str, object]:
    """Top-level ``revision``/``down_revision``/``depends_on`` of a migration file; a value that
    is not a plain literal is :data:`_OPAQUE` (the caller then defers to Alembic)."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in _NAMES:
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                found[target.id] = _OPAQUE
    return found


def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The single head of the migrations in ``versions``, without importing Alembic.

    None when a file's revisions are not plain string literals, two files share a revision, a
    file declares ``depends_on``, or there is not exactly one head: :func:`upgrade` then leaves
    the decision to Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        if path.name.startswith(("_", ".")):
            continue
        values = _literal_assignments(path)
        revision = values.get("revision")
        down = values.get("down_revision", ...)
        if (
            not isinstance(revision, str)
            or revision in revisions
            or down is ...
            or values.get("depends_on", None)
        ):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            parents.update(down)
        elif down is not None:
            return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_current(engine: Engine) -> bool:
    """Whether the database is exactly at the shipped head revision (no migration to run)."""
    from sqlalchemy import inspect, text

    head = head_revision()
    if head is None:
        return False
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return [row[0] for row in versions] == [head]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision``; safe to call on every start."""
    if revision == "head" and is_current(engine):
        return
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
