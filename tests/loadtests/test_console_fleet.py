"""The console benchmark's fleet builder (loadtests/console_fleet.py) writes its installations in
batches, beside the service: the same installations, chips and log entries as one
EnrollmentService.install per chip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from attestation.logentries import INSTALLATION
from loadtests.console_fleet import install_one_by_one, seed
from registry.api.app import create_app
from registry.api.context import utc_now
from registry.auth import Role
from registry.db.models import Chip, Installation, LogEntry
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.settings import Settings
from simulator.fleet import FleetSpec, build_fleet


def _built(tmp: Path, name: str, install: Any) -> dict[str, Any]:
    fleet = build_fleet(
        FleetSpec(
            seed=7,
            declared_cluster_chips=8,
            undeclared_cluster_chips=8,
            inference_chips_per_facility=3,
            idle_chips_per_facility=2,
            dark_chips=1,
        )
    )
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp / f'{name}.sqlite3'}",
            log_key_file=tmp / f"{name}-log-key",
            log_origin="test.chipreg.local/log",
            checkpoint_interval_s=0,
        )
    )
    ctx = app.state.context
    with ctx.sessions() as s:
        admin = AccountService(s, utc_now).create_token("fill", Role.ADMIN).secret
        s.commit()
    with BackgroundServer(app) as server:
        seed(ctx, server.url, admin, fleet, progress=lambda _: None, install=install)
    with ctx.sessions() as s:
        out = {
            "installations": sorted(
                tuple(r)
                for r in s.execute(
                    select(
                        Installation.chip_id,
                        Installation.facility_id,
                        Installation.installed_at,
                        Installation.removed_at,
                        Installation.declared_by_operator_id,
                        Installation.log_index,
                    )
                )
            ),
            "first_installed": sorted(
                tuple(r) for r in s.execute(select(Chip.chip_id, Chip.first_installed_at))
            ),
            "entries": [
                tuple(r)
                for r in s.execute(
                    select(LogEntry.index, LogEntry.leaf_hash, LogEntry.body)
                    .where(LogEntry.kind == INSTALLATION)
                    .order_by(LogEntry.index)
                )
            ],
            "chips": len(fleet.chips),
        }
    ctx.engine.dispose()
    return out


def test_batched_installations_equal_the_services(tmp_path: Path) -> None:
    batched = _built(tmp_path, "batched", None)
    one_by_one = _built(tmp_path, "service", install_one_by_one)
    assert len(batched["installations"]) == batched["chips"] > 0
    assert len(batched["entries"]) == batched["chips"]
    assert all(first is not None for _, first in batched["first_installed"])
    for part in ("installations", "first_installed", "entries"):
        assert batched[part] == one_by_one[part], part
