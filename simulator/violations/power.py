"""Planted power violations the facility meter betrays: ghost chips, chips claiming idle
while working, a misdeclared host power model."""

from __future__ import annotations

from dataclasses import replace

from simulator.ground_truth import Label
from simulator.violations.context import (
    PlantContext,
    meter_excess_chips,
    model_at,
)


def plant_ghost_chips(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    per_chip = 650.0
    w0 = ctx.start()
    count: list[int] = []

    def ghosts(_w: int) -> None:  # sized against the facility as it is when they arrive
        count.append(meter_excess_chips(ctx, facility, per_chip))
        facility.ghost_w = count[0] * per_chip

    world.at(w0, ghosts)
    world.label_after(
        lambda: Label(
            "ghost_chips",
            "power.ghost_chips",
            w0,
            facilities=frozenset({facility.facility_id}),
            also=frozenset({"chip.underreporting"}),
            detail=f"{count[0]} unregistered chips at {per_chip:g} W drawing facility power",
        )
    )


def plant_underreporting_meter(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    model = model_at(facility, world)
    n = meter_excess_chips(ctx, facility, model.tdp_watts * 0.85 - model.idle_watts)
    ids = world.add_chips(facility.facility_id, model, n)
    w0 = ctx.start()

    def lie(_w: int) -> None:
        for cid in ids:
            world.chips[cid].util = 0.9
            world.chips[cid].claim_util = 0.01

    world.at(w0, lie)
    world.label(
        Label(
            "underreporting_meter",
            "chip.underreporting",
            w0,
            chips=frozenset(ids),
            facilities=frozenset({facility.facility_id}),
            also=frozenset({"power.ghost_chips"}),
            detail=f"{n} chips work flat out while claiming idle; the meter sees their power",
        )
    )


def plant_host_power_misdeclared(ctx: PlantContext, k: int, *, fraction: float = 0.4) -> None:
    """A facility declares its hosts at ``fraction`` of what they draw (by default 40%): the
    meter shows the rest."""
    world, facility = ctx.world, ctx.facility(k)
    truth = facility.host_truth
    facility.host_declared = replace(
        truth,
        idle_w=round(truth.idle_w * fraction, 1),
        per_gpu_slot_w=round(truth.per_gpu_slot_w * fraction, 1),
        busy_w=round(truth.busy_w * fraction, 1),
    )
    world.label(
        Label(
            "host_power_misdeclared",
            "power.ghost_chips",
            0,
            facilities=frozenset({facility.facility_id}),
            also=frozenset({"chip.underreporting"}),
            detail=f"host power declared at {fraction:.0%} of the hosts' real draw",
        )
    )
