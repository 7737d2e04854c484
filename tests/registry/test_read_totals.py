"""The read side's running totals (registry/services/rollup.py) against the totals computed
directly from the rows, on SQLite and PostgreSQL: before any roll-up step, after one, with
reports past the watermark, a late report for a window already rolled up, and a chip moved to
another facility after its reports were rolled up (custody re-attribution)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from attestation.logentries import USAGE_REPORT, VERIFIER_RUN
from registry.auth import Principal, Role
from registry.db.models import Facility, Installation, Report
from registry.repositories.inventory import InventoryRepository
from registry.repositories.rollup import NEVER
from registry.services.inventory import InventoryService
from registry.services.rollup import ReadTotals
from registry.workers.rollup import roll_up_totals
from tests.conftest import LiveRegistry
from tests.registry.factories import (
    T0,
    WINDOW,
    World,
    add_operator,
    make_world,
    ok,
    signed,
)

Sums = dict[tuple[datetime, datetime], tuple[int, float]]


def _direct_windows(session: Session, operator_id: int | None) -> Sums:
    stmt = select(
        Report.window_start, Report.window_end, func.count(), func.sum(Report.energy_j)
    ).group_by(Report.window_start, Report.window_end)
    if operator_id is not None:
        stmt = stmt.where(Report.source_operator_id == operator_id)
    return {(a, b): (int(n), float(e)) for a, b, n, e in session.execute(stmt)}


def _same(found: Sums, expected: Sums) -> None:
    assert sorted(found) == sorted(expected)
    for k, (n, e) in expected.items():
        assert found[k][0] == n, k  # counts exactly
        assert found[k][1] == pytest.approx(e, rel=1e-12), k  # float sums, in another order


def check(world: World, *, rolled_facilities: bool) -> None:
    """Every total the console reads equals the direct computation from the rows."""
    ctx = world.registry.context
    facilities = [world.facility_id, world.second_facility, world.other[2]]  # type: ignore[attr-defined]
    with ctx.sessions() as s:
        totals = ReadTotals(s, ctx.clock)
        repo = InventoryRepository(s)
        for operator_id in (None, world.operator_id, world.other[0]):  # type: ignore[attr-defined]
            found = {
                (w.window_start, w.window_end): (w.reports, w.energy_j)
                for w in totals.windows(operator_id=operator_id, newest=1000)
            }
            _same(found, _direct_windows(s, operator_id))
        # The newest two windows only.
        newest = totals.windows(operator_id=None, newest=2)
        assert [(w.window_start, w.window_end) for w in newest] == sorted(_direct_windows(s, None))[
            -2:
        ]
        chips = totals.facility_chips(facilities)
        assert (chips is not None) == rolled_facilities
        direct_chips = {
            f.id: (n, peak)
            for f, n, peak in repo.facility_aggregates(operator_id=None, country=None)
        }
        # The overview's counts: chips installed from the facility totals while custody is
        # unchanged since the last step, else counted; equal to the direct count either way.
        for operator_id in (None, world.operator_id, world.other[0]):  # type: ignore[attr-defined]
            caller = ADMIN
            if operator_id is not None:
                caller = Principal(0, "op", Role.OPERATOR, operator_id=operator_id)
            counts = InventoryService(s, ctx.clock).overview(caller).counts
            assert counts == repo.counts(operator_id=operator_id), operator_id
            installed = (
                select(func.count())
                .select_from(Installation)
                .where(Installation.removed_at.is_(None))
            )
            if operator_id is not None:
                installed = installed.join(Facility, Facility.id == Installation.facility_id).where(
                    Facility.operator_id == operator_id
                )
            assert counts["chips_installed"] == s.scalar(installed), operator_id
        # GET /v1/chips's total for filters on where chips are installed: the facility totals
        # while custody is unchanged since the last step, else counted; equal either way.
        service = InventoryService(s, ctx.clock)
        taken = service._installed_total({"operator_id": None}, True, {})
        assert (taken is not None) == rolled_facilities
        for filters in (
            {"country": "US"},
            {"country": "FI"},
            {"facility_id": world.second_facility},  # type: ignore[attr-defined]
            {"operator_id": world.operator_id},
            {"status": "installed"},
            {"status": "installed", "country": "US"},
            {"facility_id": 999_999},
        ):
            _, total = service.chip_list(ADMIN, limit=1, **filters)
            status = filters.pop("status", None)
            counted = repo.chip_list(limit=1, installed=True if status else None, **filters)[1]
            assert total == counted, filters
        for facility_id in facilities:
            direct = {
                (w.window_start, w.window_end): (w.count, w.total)
                for w in repo.facility_chip_energy(facility_id, start=None, end=None)
            }
            rolled = totals.facility_windows(facility_id, start=None, end=None)
            assert (rolled is not None) == rolled_facilities
            if rolled is not None:
                _same(
                    {(w.window_start, w.window_end): (w.reports, w.energy_j) for w in rolled},
                    direct,
                )
                assert chips is not None
                n, peak = chips.get(facility_id, (0, 0.0))
                assert (n, peak) == (
                    direct_chips[facility_id][0],
                    pytest.approx(direct_chips[facility_id][1]),
                )
            # What the API and the console read, whichever way it is computed.
            balance = InventoryService(s, ctx.clock).power_balance(ADMIN, facility_id)
            _same(
                {
                    (w.window_start, w.window_end): (w.reports, w.reported_chip_energy_j)
                    for w in balance.windows
                },
                direct,
            )


ADMIN = Principal(token_id=0, name="test admin", role=Role.ADMIN)


def move(world: World, chip_id: str, facility_id: int, at: datetime) -> None:
    with world.registry.client(world.operator_token) as http:
        ok(
            http.post(
                "/v1/installations",
                json=signed(
                    "installation",
                    {
                        "chip_id": chip_id,
                        "facility_id": facility_id,
                        "installed_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                    world.operator_key,
                ),
            ),
            201,
        )


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    live_registry.context.clock = lambda: T0 + timedelta(hours=6)
    w = make_world(live_registry)
    w.other = add_operator(live_registry, "Espoo AI", "FI")  # type: ignore[attr-defined]
    with live_registry.client(w.operator_token) as http:
        second = ok(
            http.post(
                "/v1/facilities",
                json={
                    "operator_id": w.operator_id,
                    "name": "Abilene site 2",
                    "country": "US",
                    "latitude": 32.4,
                    "longitude": -99.7,
                    "declared_power_kw": 5_000,
                },
            ),
            201,
        )
    w.second_facility = second["id"]  # type: ignore[attr-defined]
    for n in range(3):
        w.enroll(f"NV-A{n}")
    w.enroll("NV-B0", facility_id=second["id"])
    return w


def test_rolled_up_totals_equal_the_rows(world: World) -> None:
    ctx = world.registry.context
    send = lambda chips: ok(world.post([world.chips[c].report() for c in chips]))  # noqa: E731
    # Nothing rolled up yet: everything is the tail; the facility sums come from the rows.
    check(world, rolled_facilities=False)
    send(["NV-A0", "NV-A1", "NV-A2", "NV-B0"])
    send(["NV-A0", "NV-A1", "NV-A2", "NV-B0"])
    check(world, rolled_facilities=False)
    first = roll_up_totals(ctx.sessions, ctx.clock)
    assert (first.before.report_log_index, first.before.custody_log_index) == (-1, NEVER)
    assert first.reports == 8
    check(world, rolled_facilities=True)
    # Reports past the watermark: read from the tail.
    send(["NV-A0", "NV-A1"])
    check(world, rolled_facilities=True)
    # A late report for a window already rolled up: a new chip's first window is T0's.
    world.enroll("NV-A3")
    late = world.chips["NV-A3"].report()
    assert ok(world.post([late]))["accepted"] == 1
    # Custody changed (a new installation): facility sums come from the rows until the next step.
    check(world, rolled_facilities=False)
    second = roll_up_totals(ctx.sessions, ctx.clock)
    assert second.reports == 3 and second.chips_reattributed == 1
    check(world, rolled_facilities=True)
    # A chip moved after its reports were rolled up: its windows from the move on now count
    # at the second facility, the first one keeps its earlier window.
    move(world, "NV-A0", world.second_facility, T0 + WINDOW)  # type: ignore[attr-defined]
    check(world, rolled_facilities=False)
    third = roll_up_totals(ctx.sessions, ctx.clock)
    assert third.reports == 0 and third.chips_reattributed == 1
    check(world, rolled_facilities=True)
    send(["NV-A0", "NV-B0"])
    assert roll_up_totals(ctx.sessions, ctx.clock).reports == 2
    check(world, rolled_facilities=True)
    # An idle step changes nothing.
    idle = roll_up_totals(ctx.sessions, ctx.clock)
    assert idle.before == idle.after and idle.reports == 0
    check(world, rolled_facilities=True)


def test_the_overview_reads_the_totals_and_the_last_verifier_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overview's reports per window are the rolled-up totals plus the tail, and its last
    verifier run is found through the partial index on the log's non-report kinds."""
    reg = world.registry
    ctx = reg.context
    ok(world.post([world.chips[c].report() for c in ("NV-A0", "NV-A1")]))
    roll_up_totals(ctx.sessions, ctx.clock)
    # NV-A2's first report is late: for the window already rolled up.
    ok(world.post([world.chips[c].report() for c in ("NV-A0", "NV-A1", "NV-A2")]))
    with reg.client(reg.admin_token) as http:
        for _ in range(2):
            ok(
                http.post(
                    "/v1/verifier/runs",
                    json={"policy": "demo", "as_of": "2026-03-01T06:00:00Z"},
                )
            )
    with ctx.sessions() as s:
        view = InventoryService(s, ctx.clock).overview(ADMIN)
        assert [(w.count, w.window_start) for w in view.reports_per_window] == [
            (3, T0),
            (2, T0 + WINDOW),
        ]
        # A long tail (no roll-up step for a while) is not summed at read time: the overview
        # reads its windows from the rows, the power balance too, with the same numbers.
        balance = InventoryService(s, ctx.clock).power_balance(ADMIN, world.facility_id)
        assert ReadTotals(s, ctx.clock).tail_is_short()
        monkeypatch.setattr("registry.services.rollup.LONG_TAIL", 0)
        assert not ReadTotals(s, ctx.clock).tail_is_short()
        assert (
            ReadTotals(s, ctx.clock).facility_windows(world.facility_id, start=None, end=None)
            is None
        )
        direct = InventoryService(s, ctx.clock).overview(ADMIN)
        assert direct.reports_per_window == view.reports_per_window
        assert InventoryService(s, ctx.clock).power_balance(ADMIN, world.facility_id) == balance
        monkeypatch.undo()
        newest = s.scalar(
            text('SELECT max("index") FROM log_entries WHERE kind = :k'), {"k": VERIFIER_RUN}
        )
        assert view.last_run is not None and view.last_run.index == newest
        # The lookup's shape is served by the partial index on both databases (PostgreSQL
        # must prove kind = 'verifier_run' implies the index's kind <> 'usage_report'; with
        # sequential scans off it shows whether it can, tables this small being scanned).
        query = (
            "SELECT \"index\" FROM log_entries WHERE kind = :k AND kind <> 'usage_report' "
            'ORDER BY "index" DESC LIMIT 1'
        )
        if s.get_bind().dialect.name == "sqlite":
            explain = "EXPLAIN QUERY PLAN "
        else:
            s.execute(text("SET LOCAL enable_seqscan = off"))
            explain = "EXPLAIN "
        plan = " ".join(
            str(row[-1]) for row in s.execute(text(explain + query), {"k": VERIFIER_RUN})
        )
        assert "ix_log_entries_kind_index" in plan, plan
        with pytest.raises(ValueError):
            InventoryRepository(s).latest_entry_of_kind(USAGE_REPORT)
