"""Planted compute violations: an undeclared or split cluster, a budget exceeded, a FLOP
threshold crossed without notification; and the honest crash-looping job (a near miss)."""

from __future__ import annotations

import math
import random

from attestation.report import LinkKind
from simulator.ground_truth import Label
from simulator.violations.context import (
    PlantContext,
    ScenarioError,
    check_size,
    crossing_window,
    declared_group,
    model_at,
    notification_thresholds,
)


def plant_undeclared_cluster(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    model = model_at(facility, world)
    threshold = ctx.policy.cluster.compute_threshold_ops_per_s
    n = check_size(math.ceil(1.3 * threshold / model.peak_ops_per_s / 8) * 8, "a cluster")
    ids = world.add_chips(facility.facility_id, model, n)
    w0 = ctx.start()
    world.at(w0, lambda _w: world.training(ids))
    world.label(
        Label(
            "undeclared_cluster",
            "cluster.undeclared",
            w0,
            chips=frozenset(ids),
            detail=f"{n} x {model.name} idle chips start training together, undeclared",
        )
    )


def plant_split_cluster(ctx: PlantContext, k: int) -> None:
    world = ctx.world
    a, b = ctx.facility(k), ctx.facility(k + 1)
    threshold = ctx.number("cluster.split", "site_compute_threshold_ops_per_s")
    groups = []
    for facility in (a, b):
        model = model_at(facility, world)
        n = check_size(math.floor(0.9 * threshold / model.peak_ops_per_s), "a split cluster")
        groups.append(world.add_chips(facility.facility_id, model, max(n, 2)))
    w0 = ctx.start()

    def start(_w: int) -> None:
        for ids in groups:
            world.training(ids)
        for x, y in zip(groups[0], groups[1], strict=False):
            world.link(x, y, LinkKind.INFINIBAND, world.rng.uniform(3.5, 5.0))

    world.at(w0, start)
    world.label(
        Label(
            "split_cluster",
            "cluster.split",
            w0,
            chips=frozenset(groups[0] + groups[1]),
            detail=f"{len(groups[0])} + {len(groups[1])} chips at facilities {a.facility_id} "
            f"and {b.facility_id}, each below the per-site threshold, linked at 56-89 Gbit/s",
        )
    )


def plant_budget_exceeded(ctx: PlantContext, k: int) -> None:
    world = ctx.world
    cid = declared_group(ctx, k, 16, budget=None, notify=True)
    decl = world.clusters[cid]
    per_window = world.projected_flop(decl.chip_ids) / world.windows
    target = ctx.start()
    decl.budget_flop = per_window * (target + 0.5) * 0.9
    budget = decl.budget_flop
    world.label_after(
        lambda: Label(
            "budget_exceeded",
            "cluster.budget_exceeded",
            crossing_window(world, cid, budget),
            clusters=frozenset({cid}),
            chips=decl.chip_ids,
            detail=f"declared budget {budget:.3g} FLOP, the run keeps going",
        )
    )


def plant_threshold_unnotified(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    thresholds = notification_thresholds(ctx.policy)
    if not thresholds:
        raise ScenarioError("the policy has no FLOP thresholds")
    model = model_at(facility, world)
    target = ctx.start(earliest=4)
    per_chip = 0.91 * model.peak_ops_per_s * world.window.total_seconds()
    n = math.ceil(thresholds[0] / ((target + 0.5) * per_chip) / 8) * 8
    cid = declared_group(ctx, k, check_size(n, "a threshold run"), budget=None, notify=False)
    decl = world.clusters[cid]
    world.label_after(
        lambda: Label(
            "threshold_unnotified",
            "cluster.threshold_unnotified",
            crossing_window(world, cid, thresholds[0]),
            clusters=frozenset({cid}),
            chips=decl.chip_ids,
            detail=f"{n} chips cross {thresholds[0]:.0e} FLOP with no notification",
        )
    )


def plant_crash_loop(ctx: PlantContext, k: int) -> None:
    """Near miss, honest: a declared 16-GPU job that crash-loops all run long. In every window it
    runs 20-40 s (2-4% busy) of communication-heavy start-up at full link speed, then dies. No
    label: any finding about it is a false alarm."""
    world, facility = ctx.world, ctx.facility(k)
    ids = world.add_chips(facility.facility_id, model_at(facility, world), 16)
    world.training(ids)
    world.declare_cluster(
        f"crashloop-{facility.site.slug}",
        facility.facility_id,
        ids,
        budget_flop=3 * world.projected_flop(ids),
        notify=notification_thresholds(ctx.policy),
    )
    rng = random.Random(f"{world.seed}:crash-loop:{k}")

    def restart(_w: int) -> None:
        duty = rng.uniform(20, 40) / world.window.total_seconds()
        for cid in ids:
            world.chips[cid].duty = duty

    for w in range(ctx.windows):
        world.at(w, restart)
