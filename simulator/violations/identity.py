"""Planted identity violations: a cloned chip key, a reused sequence number, a replayed
report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

from attestation.report import sign_report
from simulator.artifacts import Delivery
from simulator.ground_truth import Label
from simulator.violations.context import (
    PlantContext,
    busy_chips,
)


def plant_clone(ctx: PlantContext, k: int) -> None:
    world, home, other = ctx.world, ctx.facility(k), ctx.facility(k + 2)
    (chip_id,) = busy_chips(world, home, 1)
    w0 = ctx.start()

    def clone(_w: int) -> None:
        original = world.chips[chip_id]
        world.clones.append(
            replace(
                original,
                peers={},
                fake_peers={},
                hidden_peers=set(),
                history=None,
                latitude=other.site.latitude,
                longitude=other.site.longitude,
                at_facility=None,
                claim_facility=other.facility_id,
                source=f"operator:{other.operator_id}",
                util=0.9,
            )
        )

    world.at(w0, clone)
    world.label(
        Label(
            "cloned_identity",
            "identity.clone",
            w0,
            chips=frozenset({chip_id}),
            also=frozenset({"report.wrong_facility"}),
            detail=f"its key copied to facility {other.facility_id}, which reports as the chip",
        )
    )


def plant_sequence_reuse(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    (chip_id,) = busy_chips(world, facility, 1, util=0.8)
    w0 = ctx.start()

    def rewrite(w: int) -> Iterable[Delivery]:
        chip = world.chips[chip_id]
        assert chip.last is not None
        forged = replace(chip.last, utilization=0.05, energy_j=round(chip.last.energy_j / 4, 1))
        envelope = sign_report(forged, chip.key).to_json()
        at = world.window_start(w + 1) + timedelta(seconds=150)
        return [Delivery(at, world.next_order(), envelope, chip.source)]

    world.deliver(w0, rewrite)
    world.label(
        Label(
            "sequence_reused",
            "identity.clone",
            w0,
            chips=frozenset({chip_id}),
            detail="a second, different report signed for an accepted sequence number",
        )
    )


def plant_replay(ctx: PlantContext, k: int) -> None:
    world, facility, other = ctx.world, ctx.facility(k), ctx.facility(k + 1)
    (chip_id,) = busy_chips(world, facility, 1)
    world.chips[chip_id].history = {}
    w0 = ctx.start(earliest=3)

    def replay(w: int) -> Iterable[Delivery]:
        history = world.chips[chip_id].history
        assert history is not None
        at = world.window_start(w + 1) + timedelta(seconds=100)
        source = f"operator:{other.operator_id}"
        if source == world.chips[chip_id].source:
            source = "operator:999"
        return [Delivery(at, world.next_order(), history[w - 2], source)]

    world.deliver(w0, replay)
    world.label(
        Label(
            "replayed_report",
            "report.replay",
            w0,
            chips=frozenset({chip_id}),
            detail="a 30-minute-old report sent again by another operator's agent",
        )
    )
