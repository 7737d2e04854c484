"""Scenario suites: honest fleets and planted violations, judged window by window.

A scenario builds a :class:`~agents.simulator.world.World` (an honest fleet of the requested
size across several countries), plants violations in it (each with a :class:`Label`: the rule
that must catch it, its subjects, the window it starts), simulates it into signed artifacts,
ingests them (:mod:`agents.simulator.snapshots`) and runs :func:`verifier.engine.run` as each
window closes, on what the registry knew by then. Every finding is matched against the labels:
a planted violation is *found* when its rule fires on its subjects, with a *delay* in reporting
windows from the violation's first window; a finding no label explains is a *false alarm*.

Violations are sized from the policy's thresholds (a cluster above the compute threshold, ghost
chips above the meter tolerance, ...), so the suite exercises the same policy it judges with.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from agents.errors import AgentError
from agents.simulator.catalog import B200, H100, H200, MI300X, PLACES, SITES, ChipModel
from agents.simulator.snapshots import ingest, registered_from_world
from agents.simulator.world import Delivery, FacilitySim, Label, World
from attestation.report import LinkKind, sign_report
from verifier import engine
from verifier.findings import Finding
from verifier.policy import Policy

__all__ = [
    "SCENARIOS",
    "PlantResult",
    "Scenario",
    "ScenarioError",
    "ScenarioParams",
    "ScenarioResult",
    "build_world",
    "explains",
    "run_scenario",
    "run_suite",
]

EPOCH = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
SETTLE = timedelta(minutes=2)
"""How long after a window closes the verifier judges it (late reports still count later)."""
_MODELS: tuple[ChipModel, ...] = (H100, H200, B200, MI300X)
_MAX_PLANTED_CHIPS = 4096


class ScenarioError(AgentError):
    """A scenario cannot be built as asked (for example a policy threshold needing more chips
    than a simulated scenario can hold)."""


@dataclass(frozen=True)
class ScenarioParams:
    """Fleet size (approximate number of honest chips), seed and number of windows."""

    chips: int = 400
    seed: int = 7
    windows: int = 12


@dataclass(frozen=True)
class Scenario:
    """A named scenario: the violations planted (by injector name) and the windows it needs."""

    name: str
    description: str
    plants: tuple[str, ...]
    min_windows: int = 8


@dataclass(frozen=True)
class PlantResult:
    label: Label
    found_window: int | None

    @property
    def found(self) -> bool:
        return self.found_window is not None

    @property
    def delay(self) -> int | None:
        """Reporting windows from the violation's first window to the first finding."""
        return None if self.found_window is None else self.found_window - self.label.start_window


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    chips: int
    windows: int
    reports: int
    planted: tuple[PlantResult, ...]
    false_alarms: tuple[tuple[int, Finding], ...]
    """(window first seen, finding) per distinct (rule, subject) no label explains."""
    seconds: float
    verify_seconds: float
    rejected_artifacts: int = 0
    findings_seen: int = 0

    @property
    def chip_days(self) -> float:
        return self.chips * self.windows * WINDOW.total_seconds() / 86400

    @property
    def false_alarms_per_10k_chip_days(self) -> float:
        return len(self.false_alarms) / self.chip_days * 10_000 if self.chip_days else 0.0

    @property
    def missed(self) -> list[PlantResult]:
        return [p for p in self.planted if not p.found]

    @property
    def ok(self) -> bool:
        return not self.missed and not self.false_alarms


# -- the honest fleet -----------------------------------------------------------------------------


def _thresholds(policy: Policy) -> list[float]:
    rule = policy.rule("cluster.threshold_unnotified")
    return [] if rule is None else list(rule.lists["thresholds_flop"])


def build_world(params: ScenarioParams, policy: Policy, windows: int) -> World:
    """An honest fleet of about ``params.chips`` chips at 4-8 sites in several countries.

    Per site (one chip model each): 40% of the 8-GPU nodes train in a declared cluster (with a
    generous budget and every threshold notification filed), 20% serve tensor-parallel
    inference, 15% serve small models on pairs or single chips, the rest idle. Chips outside
    the US carry transfer conditions restricting them to their country. A few agents have
    one- or two-window outages whose backlog arrives later; a few reports are resent after a
    lost acknowledgement.
    """
    world = World(seed=params.seed, epoch=EPOCH, window=WINDOW, windows=windows)
    rng = random.Random(f"{params.seed}:fleet")
    n_sites = min(len(SITES), max(4, params.chips // 500))
    per_site = max(32, round(params.chips / n_sites / 8) * 8)
    thresholds = _thresholds(policy)
    for i, site in enumerate(SITES[:n_sites]):
        facility = world.add_facility(site)
        fid = facility.facility_id
        allowed = None if site.country == "US" else frozenset({site.country})
        ids = world.add_chips(fid, _MODELS[i % len(_MODELS)], per_site, allowed=allowed)
        nodes = per_site // 8
        n_train, n_tp, n_pairs = nodes * 4 // 10, nodes * 2 // 10, nodes * 15 // 100
        train = ids[: n_train * 8]
        tp = ids[n_train * 8 : (n_train + n_tp) * 8]
        pairs = ids[(n_train + n_tp) * 8 : (n_train + n_tp + n_pairs) * 8]
        if len(train) >= 16:
            world.training(train)
            world.declare_cluster(
                f"{site.slug}-pretrain",
                fid,
                train,
                budget_flop=3 * world.projected_flop(train),
                notify=thresholds,
            )
        elif train:
            world.inference_nodes(train)
        if tp:
            world.inference_nodes(tp)
        if pairs:
            world.inference_pairs(pairs)
        if windows > 6 and rng.random() < 0.5:
            first = rng.randrange(3, windows - 2)
            facility.outages.update(range(first, first + rng.choice((1, 2))))
    return world


# -- planting violations ---------------------------------------------------------------


@dataclass
class _Ctx:
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
    total = 0.0
    for c in world.chips.values():
        if c.at_facility == facility.facility_id:
            m = c.model
            total += m.idle_watts + (m.tdp_watts - m.idle_watts) * c.util * 0.95
    return total


def _meter_excess_chips(ctx: _Ctx, facility: FacilitySim, per_chip_w: float) -> int:
    """How many extra chips of ``per_chip_w`` a meter must see to be clearly unexplained:
    twice the rule's minimum chip-equivalents and a quarter of the facility's chip power."""
    min_eq = ctx.number("power.ghost_chips", "min_chip_equivalents")
    reference = ctx.number("power.ghost_chips", "reference_chip_power_w")
    by_eq = math.ceil(2 * min_eq * reference / per_chip_w)
    by_share = math.ceil(0.25 * _facility_watts(ctx.world, facility) / per_chip_w)
    return _check_size(max(by_eq, by_share), "a meter excess")


def plant_undeclared_cluster(ctx: _Ctx, k: int) -> None:
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


def plant_split_cluster(ctx: _Ctx, k: int) -> None:
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


def plant_smuggled_chip(ctx: _Ctx, k: int) -> None:
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


def plant_wrong_facility(ctx: _Ctx, k: int) -> None:
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


def _foreign(ctx: _Ctx, facility: FacilitySim) -> FacilitySim:
    for f in ctx.world.facilities.values():
        if f.site.country != facility.site.country:
            return f
    raise ScenarioError("the fleet has a single country")


def plant_forbidden_country(ctx: _Ctx, k: int) -> None:
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


def plant_gone_dark(ctx: _Ctx, k: int, *, unaccounted: bool = False) -> None:
    world, facility = ctx.world, ctx.facility(k)
    ids = _busy(world, facility, 3)
    if unaccounted:
        grace = ctx.number("chip.unaccounted", "grace_period_s")
        need = math.ceil(grace / WINDOW.total_seconds()) + 2
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


def plant_clone(ctx: _Ctx, k: int) -> None:
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


def plant_sequence_reuse(ctx: _Ctx, k: int) -> None:
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


def plant_replay(ctx: _Ctx, k: int) -> None:
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


def plant_ghost_chips(ctx: _Ctx, k: int) -> None:
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


def plant_underreporting_meter(ctx: _Ctx, k: int) -> None:
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


def plant_underreporting_peers(ctx: _Ctx, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    model = _model(facility, world)
    ids = world.add_chips(facility.facility_id, model, 16)
    world.training(ids)
    world.declare_cluster(
        f"finetune-{facility.site.slug}",
        facility.facility_id,
        ids,
        budget_flop=3 * world.projected_flop(ids),
        notify=_thresholds(ctx.policy),
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


def plant_above_peak(ctx: _Ctx, k: int) -> None:
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


def plant_one_sided_link(ctx: _Ctx, k: int) -> None:
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


def _declared_group(ctx: _Ctx, k: int, n: int, *, budget: float | None, notify: bool) -> int:
    world, facility = ctx.world, ctx.facility(k)
    model = _model(facility, world)
    ids = world.add_chips(facility.facility_id, model, n)
    world.training(ids)
    decl = world.declare_cluster(
        f"run-{facility.site.slug}-{len(world.clusters) + 1}",
        facility.facility_id,
        ids,
        budget_flop=budget if budget is not None else 3 * world.projected_flop(ids),
        notify=_thresholds(ctx.policy) if notify else (),
    )
    return decl.cluster_id


def _crossing(world: World, cid: int, limit: float) -> int:
    series = world.clusters[cid].cumulative_flop
    for w, total in enumerate(series):
        if total > limit:
            return w
    raise ScenarioError(f"cluster {cid} never crossed {limit:.3g} FLOP; the run is too short")


def plant_budget_exceeded(ctx: _Ctx, k: int) -> None:
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


def plant_threshold_unnotified(ctx: _Ctx, k: int) -> None:
    world, facility = ctx.world, ctx.facility(k)
    thresholds = _thresholds(ctx.policy)
    if not thresholds:
        raise ScenarioError("the policy has no FLOP thresholds")
    model = _model(facility, world)
    target = ctx.start(earliest=4)
    per_chip = 0.91 * model.peak_ops_per_s * WINDOW.total_seconds()
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


PLANTS: dict[str, Callable[[_Ctx, int], None]] = {
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
    # Last, so that in a combined scenario they are sized against the facility's final fleet.
    "ghost_chips": plant_ghost_chips,
    "underreporting_meter": plant_underreporting_meter,
}

_DESCRIPTIONS = {
    "undeclared_cluster": "idle chips start training together above the compute threshold",
    "split_cluster": "a cluster cut in two across facilities, each half below the threshold",
    "smuggled_chip": "a chip moved abroad, its reports relayed as if from home (RTT)",
    "wrong_facility": "a chip moved to another facility without a declaration",
    "forbidden_country": "chips declared or reporting in a country their licence forbids",
    "gone_dark": "installed chips stop reporting",
    "unaccounted": "installed chips silent beyond the unaccounted-for grace",
    "cloned_identity": "a chip's key copied to a second site that reports as the chip",
    "sequence_reused": "a second, different report for an accepted sequence number",
    "replayed_report": "an old report sent again by another sender",
    "ghost_chips": "unregistered chips drawing facility power",
    "underreporting_meter": "chips claiming idle while the meter sees them work",
    "underreporting_peers": "a chip claiming idle while its peers report heavy traffic",
    "above_peak": "reported energy above the chip's physical peak",
    "one_sided_link": "a link claimed by one end only",
    "budget_exceeded": "a declared cluster running past its declared compute budget",
    "threshold_unnotified": "a declared run crossing a legal FLOP threshold unnotified",
}

SCENARIOS: dict[str, Scenario] = {
    "honest": Scenario("honest", "an honest fleet: every finding is a false alarm", ()),
    **{
        name: Scenario(name, _DESCRIPTIONS[name], (name,), 30 if name == "unaccounted" else 10)
        for name in PLANTS
    },
    "everything": Scenario(
        "everything",
        "every violation at once in one fleet, at different sites and times",
        tuple(name for name in PLANTS if name != "unaccounted"),
        12,
    ),
}


# -- judging -----------------------------------------------------------------------------


def _finding_chips(f: Finding) -> frozenset[str]:
    if f.subject_type == "chip":
        return frozenset({f.subject_id})
    if f.subject_type == "link":
        return frozenset(f.subject_id.split("|"))
    chip_ids = f.details.get("chip_ids")
    if isinstance(chip_ids, list):
        return frozenset(str(c) for c in chip_ids)
    return frozenset()


def explains(label: Label, f: Finding) -> bool:
    """True when the finding is about the label's subjects under its rule or a consequence."""
    if f.rule_id != label.rule_id and f.rule_id not in label.also:
        return False
    if _finding_chips(f) & label.chips:
        return True
    if f.subject_type == "facility" and f.subject_id.isdigit():
        return int(f.subject_id) in label.facilities
    if f.subject_type == "declared_cluster":
        return int(f.subject_id.split("@")[0]) in label.clusters
    return False


def run_scenario(
    scenario: Scenario, params: ScenarioParams, policy: Policy, *, every: int = 1
) -> ScenarioResult:
    """Build, simulate, ingest and judge one scenario; ``every``: judge every n-th window."""
    began = time.perf_counter()
    windows = max(params.windows, scenario.min_windows)
    world = build_world(params, policy, windows)
    ctx = _Ctx(world, policy, random.Random(f"{params.seed}:{scenario.name}"), windows)
    for k, name in enumerate(scenario.plants):
        PLANTS[name](ctx, k)
    artifacts = world.simulate()
    log = ingest(registered_from_world(world), artifacts)
    labels = world.labels
    first: list[int | None] = [None] * len(labels)
    alarms: dict[tuple[str, str], tuple[int, Finding]] = {}
    seen = 0
    verify_began = time.perf_counter()
    for w in range(windows):
        if (w + 1) % every and w != windows - 1:
            continue
        as_of = world.window_start(w + 1) + SETTLE
        findings = engine.run(log.snapshot(as_of), policy, as_of)
        seen += len(findings)
        for f in findings:
            matched = [i for i, label in enumerate(labels) if explains(label, f)]
            if not matched:
                alarms.setdefault((f.rule_id, f.subject_id), (w, f))
            for i in matched:
                if f.rule_id == labels[i].rule_id and first[i] is None:
                    first[i] = w
    verify_seconds = time.perf_counter() - verify_began
    return ScenarioResult(
        name=scenario.name,
        chips=len(world.chips),
        windows=windows,
        reports=log.report_count,
        planted=tuple(PlantResult(label, first[i]) for i, label in enumerate(labels)),
        false_alarms=tuple(alarms[k] for k in sorted(alarms)),
        seconds=time.perf_counter() - began,
        verify_seconds=verify_seconds,
        rejected_artifacts=log.rejected,
        findings_seen=seen,
    )


def run_suite(
    names: Sequence[str], params: ScenarioParams, policy: Policy, *, every: int = 1
) -> list[ScenarioResult]:
    """Run the named scenarios in order (``KeyError`` for an unknown name)."""
    return [run_scenario(SCENARIOS[n], params, policy, every=every) for n in names]
