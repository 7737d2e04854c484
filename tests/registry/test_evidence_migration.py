"""Migration 0014 on a registry with data: the new evidence-ledger columns are filled from the
log for rows written before it (the log is the authority a partner replays)."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module
from typing import Any

from sqlalchemy import text

from registry.migrations import versions
from tests.registry.factories import T0, add_operator, make_world, ok
from tests.registry.test_custody import log_entries

MIGRATION = import_module(f"{versions.__name__}.0014_evidence_original_receipt")


def test_upgrade_fills_the_ledger_columns_from_the_log(live_registry: Any) -> None:
    live_registry.context.clock = lambda: T0 + timedelta(hours=1)
    world = make_world(live_registry)
    chip = world.enroll("NV-1")
    original = chip.report()
    ok(world.post([original]))
    _, other_token, _ = add_operator(live_registry, "Toronto", "CA")
    refused = ok(world.post([original], token=other_token))["results"][0]
    assert refused["code"] == "forbidden"  # a copy of the accepted report, naming it
    engine = live_registry.context.engine

    def columns() -> tuple[object, ...]:
        with engine.connect() as c:
            return (
                c.execute(text("SELECT enrollment_log_index FROM chips")).scalar_one(),
                sorted(c.execute(text("SELECT id, log_index FROM facilities")).all()),
                c.execute(
                    text("SELECT original_received_at IS NOT NULL FROM rejected_submissions")
                ).scalar_one(),
            )

    written = columns()
    kinds = {index: kind for index, kind, _ in log_entries(world)}
    assert kinds[written[0]] == "enrollment"  # type: ignore[index]
    assert all(kinds[i] == "facility" for _, i in written[1])  # type: ignore[attr-defined]
    assert written[2]
    # Rows from before the migration: the columns empty, then filled as the upgrade fills them.
    with engine.begin() as c:
        c.execute(text("UPDATE chips SET enrollment_log_index = NULL"))
        c.execute(text("UPDATE facilities SET log_index = NULL"))
        c.execute(text("UPDATE rejected_submissions SET original_received_at = NULL"))
    assert columns() == (None, [(i, None) for i, _ in written[1]], False)  # type: ignore[attr-defined]
    with engine.begin() as c:
        MIGRATION.backfill(c)
    assert columns() == written
