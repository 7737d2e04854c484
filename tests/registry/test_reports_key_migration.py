"""Migration 0017 on a registry with reports: keyed by (chip_id, seq) going up, a surrogate id
numbered in log order coming down, every row kept both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, inspect, text

from registry.db.migrate import upgrade
from tests.registry.factories import make_world, ok
from tests.registry.test_migrations import downgrade


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as c:
        return [
            tuple(r)
            for r in c.execute(
                text("SELECT chip_id, seq, digest, log_index FROM reports ORDER BY log_index")
            )
        ]


def test_reports_keep_every_row_down_to_0016_and_up_again(live_registry: Any) -> None:
    world = make_world(live_registry)
    chips = [world.enroll(f"NV-{n}") for n in range(3)]
    for _ in range(2):
        ok(world.post([chip.report() for chip in chips]))
    engine = live_registry.context.engine
    engine.dispose()  # no pooled session keeps a lock on the table while it is altered
    written = _rows(engine)
    assert len(written) == 6
    key = inspect(engine).get_pk_constraint("reports")
    assert key["name"] == "pk_reports" and key["constrained_columns"] == ["chip_id", "seq"]

    downgrade(engine, "0016")
    inspector = inspect(engine)
    assert inspector.get_pk_constraint("reports")["constrained_columns"] == ["id"]
    with engine.connect() as c:
        numbered = c.execute(text("SELECT id, log_index FROM reports ORDER BY log_index")).all()
    assert [n for n, _ in numbered] == [1, 2, 3, 4, 5, 6]
    assert _rows(engine) == written

    upgrade(engine)
    inspector = inspect(engine)
    assert "id" not in {c["name"] for c in inspector.get_columns("reports")}
    assert inspector.get_pk_constraint("reports")["constrained_columns"] == ["chip_id", "seq"]
    assert _rows(engine) == written
    # the registry still takes the chips' next reports on the rebuilt table
    ok(world.post([chip.report() for chip in chips]))
    assert len(_rows(engine)) == 9
