"""Planted false claims in a chip's own reports: under-reported use that its peers' traffic
betrays, energy above the board's peak, a one-sided link, a bursty job claiming idle."""

from __future__ import annotations

from simulator.ground_truth import Label
from simulator.violations.context import (
    PlantContext,
    busy_chips,
    model_at,
    notification_thresholds,
)


def plant_underreporting_peers(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    model = model_at(facility, world)
    ids = world.add_chips(facility.facility_id, model, 16)
    world.training(ids)
    world.declare_cluster(
        f"finetune-{facility.site.slug}",
        facility.facility_id,
        ids,
        budget_flop=3 * world.projected_flop(ids),
        notify=notification_thresholds(ctx.policy),
    )
    liar = ids[5]
    w0 = ctx.start()

    def lie(_w: int) -> None:
        world.chips[liar].claim_util = 0.01

    world.at(w0, lie)
    world.label(
        Label(
            "underreporting_peers",
            "chip.underreporting",
            w0,
            chips=frozenset({liar}),
            detail="a training chip claims idle while its peers report heavy traffic with it",
        )
    )


def plant_above_peak(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    (chip_id,) = busy_chips(world, facility, 1, util=0.95)
    w0 = ctx.start()

    def inflate(_w: int) -> None:
        world.chips[chip_id].energy_factor = 1.6

    world.at(w0, inflate)
    world.label(
        Label(
            "above_peak",
            "chip.above_peak",
            w0,
            chips=frozenset({chip_id}),
            detail="reports 1.6x its true energy, above the board's peak power",
        )
    )


def plant_one_sided_link(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    a, b = busy_chips(world, facility, 2)
    kind = world.chips[a].model.scale_up_link
    w0 = ctx.start()

    def claim(_w: int) -> None:
        world.chips[a].fake_peers[b] = (kind, 3e9, 3e9)

    world.at(w0, claim)
    world.label(
        Label(
            "one_sided_link",
            "link.one_sided",
            w0,
            chips=frozenset({a, b}),
            detail="claims 48 Gbit/s with a chip that never mentions it",
        )
    )


def plant_burst_hider(ctx: PlantContext, k: int, *, duty: float = 0.2) -> None:
    """A chip of a job that runs in bursts (by default 3 minutes per window, 20% busy) claims
    2%: as idle as a crash-looping job's chips, but its peers exchange far more with it than
    its links could carry in 2% of the window."""
    world, facility = ctx.world, ctx.facility(k)
    ids = world.add_chips(facility.facility_id, model_at(facility, world), 16)
    world.training(ids)
    world.declare_cluster(
        f"bursts-{facility.site.slug}",
        facility.facility_id,
        ids,
        budget_flop=3 * world.projected_flop(ids),
        notify=notification_thresholds(ctx.policy),
    )
    for cid in ids:
        world.chips[cid].duty = duty
    liar = ids[3]
    w0 = ctx.start()

    def lie(_w: int) -> None:
        world.chips[liar].claim_util = 0.02

    world.at(w0, lie)
    world.label(
        Label(
            "burst_hider",
            "chip.underreporting",
            w0,
            chips=frozenset({liar}),
            also=frozenset({"power.ghost_chips"}),
            detail=f"a chip busy {duty:.0%} of each window in bursts claims 2%",
        )
    )
