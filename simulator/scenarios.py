"""Scenario suites: honest fleets and planted violations, judged window by window.

A scenario builds a :class:`~simulator.world.World` (an honest fleet of the requested
size across several countries), plants violations in it (each with a :class:`Label`: the rule
that must catch it, its subjects, the window it starts), simulates it into signed artifacts,
ingests them (:mod:`simulator.snapshots`) and runs :func:`verifier.engine.run` as each
window closes, on what the registry knew by then. Every finding is matched against the labels:
a planted violation is *found* when its rule fires on its subjects, with a *delay* in reporting
windows from the violation's first window; a finding no label explains is a *false alarm*.

Violations are sized from the policy's thresholds (a cluster above the compute threshold, ghost
chips above the meter tolerance, ...), so the suite exercises the same policy it judges with.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simulator.catalog import B200, H100, H200, MI300X, SITES, ChipModel
from simulator.ground_truth import Label
from simulator.snapshots import ingest, registered_from_world
from simulator.violations import (
    PLANTS,
    PlantContext,
    ScenarioError,
    notification_thresholds,
)
from simulator.world import World
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
    "judge_world",
    "run_scenario",
    "run_suite",
]

EPOCH = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
SETTLE = timedelta(minutes=2)
"""How long after a window closes the verifier judges it (late reports still count later)."""
_MODELS: tuple[ChipModel, ...] = (H100, H200, B200, MI300X)


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
    """(window first seen, finding) per distinct condition (rule and fingerprint: subject and
    window start) no label explains."""
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
    thresholds = notification_thresholds(policy)
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
    "crash_loop": "near miss: an honest multi-GPU job crash-looping, 20-40 s of traffic a window",
    "burst_hider": "a chip working in short bursts (20% busy) while claiming 2%",
    "host_power_misdeclared": "a facility declaring its host power at 40% of the truth",
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
    ctx = PlantContext(world, policy, random.Random(f"{params.seed}:{scenario.name}"), windows)
    for k, name in enumerate(scenario.plants):
        PLANTS[name](ctx, k)
    return judge_world(scenario.name, world, policy, every=every, began=began)


def judge_world(
    name: str, world: World, policy: Policy, *, every: int = 1, began: float | None = None
) -> ScenarioResult:
    """Simulate a built world, ingest what it sends and judge it as each ``every``-th window
    closes: planted violations found (and when), findings no label explains (false alarms)."""
    began = time.perf_counter() if began is None else began
    windows = world.windows
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
            if not matched:  # one false alarm per condition (fingerprint), not per run
                alarms.setdefault((f.rule_id, f.fingerprint), (w, f))
            for i in matched:
                if f.rule_id == labels[i].rule_id and first[i] is None:
                    first[i] = w
    verify_seconds = time.perf_counter() - verify_began
    return ScenarioResult(
        name=name,
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
