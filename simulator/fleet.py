"""The demo's fleet: a deterministic :class:`~simulator.world.World` with two planted violations.

Everything (keys, chip ids, placements, workloads) follows from :attr:`FleetSpec.seed`, so a
run can be repeated and its findings compared against the world's ground truth
(:attr:`World.labels <simulator.world.World.labels>`).

The fleet: two vendors (NVIDIA, AMD); two operators; four facilities in three countries
(:data:`FLEET_SITES`); one declared training cluster; honest inference chips (light traffic,
few peers); idle chips. Planted: an undeclared cluster above the demo policy's threshold
(``undeclared_cluster``) and chips that go silent from a given window (``gone_dark``).

It is the same world model the scenario suite uses, so it can be provisioned into a registry
(:func:`simulator.provision.provision_world`) and either run through real agents
(:func:`simulator.run.run_windows`, with :func:`workload` as each chip's telemetry) or
simulated window by window (:meth:`World.simulate <simulator.world.World.simulate>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agents.backends.simulated import PeerRate, Workload
from agents.errors import AgentError
from simulator.catalog import B200, H100, H200, MI300X, SITES
from simulator.ground_truth import Label
from simulator.inventory import ChipSim
from simulator.world import World

__all__ = ["FLEET_SITES", "FleetSpec", "build_fleet", "silenced_from", "workload"]

#: The fleet's facilities (slugs of :data:`simulator.catalog.SITES`), in declaration order.
FLEET_SITES = ("us-tx-abilene", "us-va-ashburn", "fi-hamina", "ie-dublin")


@dataclass(frozen=True)
class FleetSpec:
    """Sizes and seed of a simulated fleet. Cluster sizes are multiples of ``gpus_per_node``."""

    seed: int = 2026
    declared_cluster_chips: int = 64
    undeclared_cluster_chips: int = 32
    inference_chips_per_facility: int = 24
    idle_chips_per_facility: int = 8
    dark_chips: int = 5
    dark_after_window: int = 3
    gpus_per_node: int = 8
    epoch: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    window: timedelta = timedelta(minutes=15)
    windows: int = 8
    """How many windows :meth:`World.simulate` steps (agents run as many as they are told)."""


def workload(chip: ChipSim) -> Workload:
    """What a simulated accelerator reports for ``chip``: its base utilisation, the board power
    that goes with it, and its peers' traffic (the agent's view of the world's chip)."""
    model = chip.model
    power = model.board_power_w(chip.util)
    return Workload(
        utilization=round(chip.util, 4),
        power_w=round(power, 1),
        peers=tuple(
            PeerRate(peer, kind, tx_bytes_per_s=tx, rx_bytes_per_s=rx)
            for peer, (kind, tx, rx) in chip.peers.items()
        ),
    )


def silenced_from(world: World) -> dict[str, int]:
    """Chips planted to stop reporting (ground truth under ``chip.silent``), with the index of
    the first window they are silent in."""
    return {
        chip_id: label.start_window
        for label in world.labels
        if label.rule_id == "chip.silent"
        for chip_id in label.chips
    }


def build_fleet(spec: FleetSpec | None = None) -> World:
    """Build the fleet described by ``spec``; the same spec always gives the same world."""
    spec = spec or FleetSpec()
    for n in (spec.declared_cluster_chips, spec.undeclared_cluster_chips):
        if n % spec.gpus_per_node:
            raise AgentError(f"cluster size {n} is not a multiple of {spec.gpus_per_node}")
    if spec.dark_chips > spec.inference_chips_per_facility:
        raise AgentError("more dark chips than inference chips at the facility")
    world = World(seed=spec.seed, epoch=spec.epoch, window=spec.window, windows=spec.windows)
    sites = {s.slug: s for s in SITES}
    abilene, ashburn, hamina, dublin = (
        world.add_facility(sites[slug]).facility_id for slug in FLEET_SITES
    )
    inf, idle = spec.inference_chips_per_facility, spec.idle_chips_per_facility

    training = world.add_chips(abilene, H100, spec.declared_cluster_chips)
    world.training(training, per_node=spec.gpus_per_node)
    world.add_chips(abilene, H100, idle)

    ashburn_h100 = world.add_chips(ashburn, H100, inf)
    world.inference_pairs(ashburn_h100)
    world.inference_pairs(world.add_chips(ashburn, B200, inf // 2))
    world.add_chips(ashburn, B200, idle)

    hidden = world.add_chips(hamina, H200, spec.undeclared_cluster_chips)
    world.training(hidden, per_node=spec.gpus_per_node)
    world.inference_pairs(world.add_chips(hamina, H200, inf // 2))
    world.add_chips(hamina, H200, idle)

    world.inference_pairs(world.add_chips(dublin, MI300X, inf))
    world.add_chips(dublin, MI300X, idle)

    world.declare_cluster(
        "abilene-pretrain-1",
        abilene,
        training,
        budget_flop=None,
        purpose="pre-training of a declared frontier model run",
    )
    hidden_ops = spec.undeclared_cluster_chips * H200.peak_ops_per_s
    world.label(
        Label(
            "undeclared_cluster",
            "cluster.undeclared",
            0,
            chips=frozenset(hidden),
            facilities=frozenset({hamina}),
            detail=(
                f"{len(hidden)} x {H200.name} ({hidden_ops:.2e} dense BF16 OP/s) networked "
                "all-to-all over NVLink and in a ring over InfiniBand above 100 Gbit/s, "
                "with no cluster declaration"
            ),
        )
    )
    dark = ashburn_h100[-spec.dark_chips :] if spec.dark_chips else []
    if dark:

        def go_dark(_w: int) -> None:
            for chip_id in dark:
                world.chips[chip_id].reporting = False

        world.at(spec.dark_after_window, go_dark)
        world.label(
            Label(
                "gone_dark",
                "chip.silent",
                spec.dark_after_window,
                chips=frozenset(dark),
                facilities=frozenset({ashburn}),
                detail=f"{len(dark)} installed chips stop reporting after window "
                f"{spec.dark_after_window - 1}",
            )
        )
    return world
