"""Planted location and custody violations: a chip smuggled away, moved to the wrong
facility, transferred to a forbidden country, or gone dark."""

from __future__ import annotations

import math

from simulator.catalog import PLACES
from simulator.ground_truth import Label
from simulator.violations.context import (
    PlantContext,
    ScenarioError,
    busy_chips,
    foreign_facility,
    model_at,
)


def plant_smuggled_chip(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    (chip_id,) = busy_chips(world, facility, 1)
    place = PLACES[k % len(PLACES)]
    w0 = ctx.start()
    world.at(w0, lambda _w: world.move(chip_id, to=place))
    world.label(
        Label(
            "smuggled_chip",
            "location.rtt_mismatch",
            w0,
            chips=frozenset({chip_id}),
            detail=f"moved from facility {facility.facility_id} to {place.name}; its reports are "
            "relayed and still claim the declared facility",
        )
    )


def plant_wrong_facility(ctx: PlantContext, k: int) -> None:
    world, a, b = ctx.world, ctx.facility(k), ctx.facility(k + 1)
    (chip_id,) = busy_chips(world, a, 1)
    w0 = ctx.start()

    def move(_w: int) -> None:
        world.move(chip_id, to=b)
        world.chips[chip_id].claim_facility = b.facility_id

    world.at(w0, move)
    world.label(
        Label(
            "wrong_facility",
            "report.wrong_facility",
            w0,
            chips=frozenset({chip_id}),
            also=frozenset({"location.rtt_mismatch", "chip.forbidden_country"}),
            detail=f"moved undeclared from facility {a.facility_id} to {b.facility_id}, "
            "reports name the new facility",
        )
    )


def plant_forbidden_country(ctx: PlantContext, k: int) -> None:
    world, home = ctx.world, ctx.facility(k)
    away = foreign_facility(ctx, home)
    allowed = frozenset({home.site.country})
    declared, reported = world.add_chips(
        home.facility_id, model_at(home, world), 2, allowed=allowed
    )
    for cid in (declared, reported):
        world.chips[cid].util = 0.5
    w0 = ctx.start()
    world.reinstall(declared, away.facility_id, w0)

    def transfer(_w: int) -> None:
        world.move(declared, to=away)
        world.chips[declared].facility_id = away.facility_id
        world.chips[declared].source = f"operator:{away.operator_id}"
        world.move(reported, to=away)
        world.chips[reported].claim_facility = away.facility_id

    world.at(w0, transfer)
    world.label(
        Label(  # the declaration takes effect as window w0 - 1 closes
            "forbidden_country_declared",
            "chip.forbidden_country",
            w0 - 1,
            chips=frozenset({declared}),
            detail=f"declared transfer to {away.site.country} (allowed: {home.site.country})",
        )
    )
    world.label(
        Label(
            "forbidden_country_reported",
            "chip.forbidden_country",
            w0,
            chips=frozenset({reported}),
            also=frozenset({"report.wrong_facility", "location.rtt_mismatch"}),
            detail=f"moved undeclared to {away.site.country}, reports name that facility",
        )
    )


def plant_gone_dark(ctx: PlantContext, k: int, *, unaccounted: bool = False) -> None:
    world, facility = ctx.world, ctx.facility(k)
    ids = busy_chips(world, facility, 3)
    if unaccounted:
        grace = ctx.number("chip.unaccounted", "grace_period_s")
        need = math.ceil(grace / ctx.world.window.total_seconds()) + 2
        if ctx.windows < need + 2:
            raise ScenarioError(f"chip.unaccounted needs at least {need + 2} windows")
        w0 = ctx.rng.randint(1, ctx.windows - need)
    else:
        w0 = ctx.start()

    def dark(_w: int) -> None:
        for cid in ids:
            world.chips[cid].reporting = False
            world.chips[cid].powered = False

    world.at(w0, dark)
    rule, also = ("chip.unaccounted", "chip.silent") if unaccounted else ("chip.silent", "")
    world.label(
        Label(
            "unaccounted" if unaccounted else "gone_dark",
            rule,
            w0,
            chips=frozenset(ids),
            also=frozenset({also, "chip.unaccounted"} - {"", rule}),
            detail=f"{len(ids)} chips at facility {facility.facility_id} stop reporting",
        )
    )
