"""Violations the scenario suite plants in an honest world, each with its ground-truth label.

Every ``plant_*`` function changes a :class:`~simulator.world.World` before it is
simulated (moves, clones, silences or adds chips, rewrites reports, adds load to a meter) and
records a :class:`~simulator.world.Label`: the rule that must catch it, its subjects and
the window it starts. Sizes come from the policy's thresholds (:class:`PlantContext`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from agents.errors import AgentError
from attestation.report import LinkKind, sign_report
from simulator.catalog import H100, PLACES, ChipModel
from simulator.world import Delivery, FacilitySim, Label, World
from verifier.policy import Policy

__all__ = [
    "PLANTS",
    "PlantContext",
    "ScenarioError",
    "notification_thresholds",
    "plant_burst_hider",
    "plant_host_power_misdeclared",
]

_MAX_PLANTED_CHIPS = 4096


def notification_thresholds(policy: Policy) -> list[float]:
    """The legal FLOP thresholds a declared run must notify (``cluster.threshold_unnotified``)."""
    rule = policy.rule("cluster.threshold_unnotified")
    return [] if rule is None else list(rule.lists["thresholds_flop"])


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
        return rule.number(name)

    def facility(self, k: int) -> FacilitySim:
        facilities = list(self.world.facilities.values())
        return facilities[k % len(facilities)]

    def start(self, earliest: int = 2) -> int:
        """A start window leaving at least a third of the run to detect the violation."""
        latest = max(earliest, self.windows - max(3, self.windows // 3))
        return self.rng.randint(earliest, latest)


def _model(facility: FacilitySim, world: World) -> ChipModel:
    for chip in world.chips.values():
        if chip.facility_id == facility.facility_id:
            return chip.model
    return H100


def _busy(world: World, facility: FacilitySim, n: int, util: float = 0.5) -> list[str]:
    ids = world.add_chips(facility.facility_id, _model(facility, world), n)
    for cid in ids:
        world.chips[cid].util = util
    return ids


def _check_size(n: int, what: str) -> int:
    if n > _MAX_PLANTED_CHIPS:
        raise ScenarioError(f"{what} needs {n} chips under this policy; too many to simulate")
    return n


def _facility_watts(world: World, facility: FacilitySim) -> float:
    """The facility's IT power as planned: its chips at their base utilization and its hosts."""
    total, chips, busy = 0.0, 0, 0.0
    for c in world.chips.values():
        if c.at_facility == facility.facility_id:
            m = c.model
            util = c.util * c.duty
            total += m.idle_watts + (m.tdp_watts - m.idle_watts) * util * 0.95
            chips += 1
            busy += util
    return total + facility.host_truth.watts(chips, busy)


def _meter_excess_chips(ctx: PlantContext, facility: FacilitySim, per_chip_w: float) -> int:
    """How many extra chips of ``per_chip_w`` a meter must see to be clearly unexplained:
    twice the rule's minimum chip-equivalents and a quarter of the facility's IT power (chips
    and hosts: the rule's tolerance grows with both)."""
    min_eq = ctx.number("power.ghost_chips", "min_chip_equivalents")
    reference = ctx.number("power.ghost_chips", "reference_chip_power_w")
    by_eq = math.ceil(2 * min_eq * reference / per_chip_w)
    by_share = math.ceil(0.25 * _facility_watts(ctx.world, facility) / per_chip_w)
    return _check_size(max(by_eq, by_share), "a meter excess")


def plant_undeclared_cluster(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    model = _model(facility, world)
    threshold = ctx.policy.cluster.compute_threshold_ops_per_s
    n = _check_size(math.ceil(1.3 * threshold / model.peak_ops_per_s / 8) * 8, "a cluster")
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
        model = _model(facility, world)
        n = _check_size(math.floor(0.9 * threshold / model.peak_ops_per_s), "a split cluster")
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


def plant_smuggled_chip(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    (chip_id,) = _busy(world, facility, 1)
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
    (chip_id,) = _busy(world, a, 1)
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


def _foreign(ctx: PlantContext, facility: FacilitySim) -> FacilitySim:
    for f in ctx.world.facilities.values():
        if f.site.country != facility.site.country:
            return f
    raise ScenarioError("the fleet has a single country")


def plant_forbidden_country(ctx: PlantContext, k: int) -> None:
    world, home = ctx.world, ctx.facility(k)
    away = _foreign(ctx, home)
    allowed = frozenset({home.site.country})
    declared, reported = world.add_chips(home.facility_id, _model(home, world), 2, allowed=allowed)
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
    ids = _busy(world, facility, 3)
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


def plant_clone(ctx: PlantContext, k: int) -> None:
    world, home, other = ctx.world, ctx.facility(k), ctx.facility(k + 2)
    (chip_id,) = _busy(world, home, 1)
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
    (chip_id,) = _busy(world, facility, 1, util=0.8)
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
    (chip_id,) = _busy(world, facility, 1)
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


def plant_ghost_chips(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    per_chip = 650.0
    w0 = ctx.start()
    count: list[int] = []

    def ghosts(_w: int) -> None:  # sized against the facility as it is when they arrive
        count.append(_meter_excess_chips(ctx, facility, per_chip))
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
    model = _model(facility, world)
    n = _meter_excess_chips(ctx, facility, model.tdp_watts * 0.85 - model.idle_watts)
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


def plant_underreporting_peers(ctx: PlantContext, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    model = _model(facility, world)
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
    (chip_id,) = _busy(world, facility, 1, util=0.95)
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
    a, b = _busy(world, facility, 2)
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


def _declared_group(
    ctx: PlantContext, k: int, n: int, *, budget: float | None, notify: bool
) -> int:
    world, facility = ctx.world, ctx.facility(k)
    model = _model(facility, world)
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


def _crossing(world: World, cid: int, limit: float) -> int:
    series = world.clusters[cid].cumulative_flop
    for w, total in enumerate(series):
        if total > limit:
            return w
    raise ScenarioError(f"cluster {cid} never crossed {limit:.3g} FLOP; the run is too short")


def plant_budget_exceeded(ctx: PlantContext, k: int) -> None:
    world = ctx.world
    cid = _declared_group(ctx, k, 16, budget=None, notify=True)
    decl = world.clusters[cid]
    per_window = world.projected_flop(decl.chip_ids) / world.windows
    target = ctx.start()
    decl.budget_flop = per_window * (target + 0.5) * 0.9
    budget = decl.budget_flop
    world.label_after(
        lambda: Label(
            "budget_exceeded",
            "cluster.budget_exceeded",
            _crossing(world, cid, budget),
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
    model = _model(facility, world)
    target = ctx.start(earliest=4)
    per_chip = 0.91 * model.peak_ops_per_s * world.window.total_seconds()
    n = math.ceil(thresholds[0] / ((target + 0.5) * per_chip) / 8) * 8
    cid = _declared_group(ctx, k, _check_size(n, "a threshold run"), budget=None, notify=False)
    decl = world.clusters[cid]
    world.label_after(
        lambda: Label(
            "threshold_unnotified",
            "cluster.threshold_unnotified",
            _crossing(world, cid, thresholds[0]),
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
    ids = world.add_chips(facility.facility_id, _model(facility, world), 16)
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


def plant_burst_hider(ctx: PlantContext, k: int, *, duty: float = 0.2) -> None:
    """A chip of a job that runs in bursts (by default 3 minutes per window, 20% busy) claims
    2%: as idle as a crash-looping job's chips, but its peers exchange far more with it than
    its links could carry in 2% of the window."""
    world, facility = ctx.world, ctx.facility(k)
    ids = world.add_chips(facility.facility_id, _model(facility, world), 16)
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


PLANTS: dict[str, Callable[[PlantContext, int], None]] = {
    "undeclared_cluster": plant_undeclared_cluster,
    "split_cluster": plant_split_cluster,
    "smuggled_chip": plant_smuggled_chip,
    "wrong_facility": plant_wrong_facility,
    "forbidden_country": plant_forbidden_country,
    "gone_dark": plant_gone_dark,
    "unaccounted": lambda ctx, k: plant_gone_dark(ctx, k, unaccounted=True),
    "cloned_identity": plant_clone,
    "sequence_reused": plant_sequence_reuse,
    "replayed_report": plant_replay,
    "underreporting_peers": plant_underreporting_peers,
    "above_peak": plant_above_peak,
    "one_sided_link": plant_one_sided_link,
    "budget_exceeded": plant_budget_exceeded,
    "threshold_unnotified": plant_threshold_unnotified,
    "crash_loop": plant_crash_loop,
    "burst_hider": plant_burst_hider,
    "host_power_misdeclared": plant_host_power_misdeclared,
    # Last, so that in a combined scenario they are sized against the facility's final fleet.
    "ghost_chips": plant_ghost_chips,
    "underreporting_meter": plant_underreporting_meter,
}
