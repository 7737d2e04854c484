"""What every planted violation shares: the plant context (world, policy, rng, windows), the
scenario error, and the sizing helpers that turn a policy's thresholds into chip counts."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from agents.errors import AgentError
from simulator.catalog import H100, ChipModel
from simulator.inventory import FacilitySim
from simulator.world import World
from verifier.params import ThresholdUnnotifiedParams
from verifier.policy import Policy

MAX_PLANTED_CHIPS = 4096


def notification_thresholds(policy: Policy) -> list[float]:
    """The legal FLOP thresholds a declared run must notify (``cluster.threshold_unnotified``)."""
    rule = policy.settings(ThresholdUnnotifiedParams)
    return [] if rule is None else list(rule.params.thresholds_flop)


class ScenarioError(AgentError):
    """A scenario cannot be built as asked (for example a policy threshold needing more chips
    than a simulated scenario can hold)."""


@dataclass
class PlantContext:
    world: World
    policy: Policy
    rng: random.Random
    windows: int
    used_sites: list[int] = field(default_factory=list)

    def number(self, rule_id: str, name: str) -> float:
        rule = self.policy.rule(rule_id)
        if rule is None:
            raise ScenarioError(f"policy {self.policy.policy_id} has no rule {rule_id}")
        return float(rule.params[name])

    def facility(self, k: int) -> FacilitySim:
        facilities = list(self.world.facilities.values())
        return facilities[k % len(facilities)]

    def start(self, earliest: int = 2) -> int:
        """A start window leaving at least a third of the run to detect the violation."""
        latest = max(earliest, self.windows - max(3, self.windows // 3))
        return self.rng.randint(earliest, latest)


def model_at(facility: FacilitySim, world: World) -> ChipModel:
    for chip in world.chips.values():
        if chip.facility_id == facility.facility_id:
            return chip.model
    return H100


def busy_chips(world: World, facility: FacilitySim, n: int, util: float = 0.5) -> list[str]:
    ids = world.add_chips(facility.facility_id, model_at(facility, world), n)
    for cid in ids:
        world.chips[cid].util = util
    return ids


def check_size(n: int, what: str) -> int:
    if n > MAX_PLANTED_CHIPS:
        raise ScenarioError(f"{what} needs {n} chips under this policy; too many to simulate")
    return n


def facility_watts(world: World, facility: FacilitySim) -> float:
    """The facility's IT power as planned: its chips at their base utilization and its hosts."""
    total, chips, busy = 0.0, 0, 0.0
    for c in world.chips.values():
        if c.at_facility == facility.facility_id:
            m = c.model
            util = c.util * c.duty
            total += m.board_power_w(util)
            chips += 1
            busy += util
    return total + facility.host_truth.watts(chips, busy)


def meter_excess_chips(ctx: PlantContext, facility: FacilitySim, per_chip_w: float) -> int:
    """How many extra chips of ``per_chip_w`` a meter must see to be clearly unexplained:
    twice the rule's minimum chip-equivalents and a quarter of the facility's IT power (chips
    and hosts: the rule's tolerance grows with both)."""
    min_eq = ctx.number("power.ghost_chips", "min_chip_equivalents")
    reference = ctx.number("power.ghost_chips", "reference_chip_power_w")
    by_eq = math.ceil(2 * min_eq * reference / per_chip_w)
    by_share = math.ceil(0.25 * facility_watts(ctx.world, facility) / per_chip_w)
    return check_size(max(by_eq, by_share), "a meter excess")


def foreign_facility(ctx: PlantContext, facility: FacilitySim) -> FacilitySim:
    for f in ctx.world.facilities.values():
        if f.site.country != facility.site.country:
            return f
    raise ScenarioError("the fleet has a single country")


def declared_group(ctx: PlantContext, k: int, n: int, *, budget: float | None, notify: bool) -> int:
    world, facility = ctx.world, ctx.facility(k)
    model = model_at(facility, world)
    ids = world.add_chips(facility.facility_id, model, n)
    world.training(ids)
    decl = world.declare_cluster(
        f"run-{facility.site.slug}-{len(world.clusters) + 1}",
        facility.facility_id,
        ids,
        budget_flop=budget if budget is not None else 3 * world.projected_flop(ids),
        notify=notification_thresholds(ctx.policy) if notify else (),
    )
    return decl.cluster_id


def crossing_window(world: World, cid: int, limit: float) -> int:
    series = world.clusters[cid].cumulative_flop
    for w, total in enumerate(series):
        if total > limit:
            return w
    raise ScenarioError(f"cluster {cid} never crossed {limit:.3g} FLOP; the run is too short")
