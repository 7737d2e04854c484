"""Violations the scenario suite plants in an honest world, each with its ground-truth label.

Every ``plant_*`` function changes a :class:`~simulator.world.World` before it is
simulated (moves, clones, silences or adds chips, rewrites reports, adds load to a meter) and
records a :class:`~simulator.world.Label`: the rule that must catch it, its subjects and
the window it starts. Sizes come from the policy's thresholds (:class:`PlantContext`).
:data:`PLANTS` names each one; they live by what they falsify: compute (:mod:`.clusters`),
location and custody (:mod:`.location`), identity (:mod:`.identity`), a chip's own reports
(:mod:`.reports`) and power (:mod:`.power`).
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.violations.clusters import (
    plant_budget_exceeded,
    plant_crash_loop,
    plant_split_cluster,
    plant_threshold_unnotified,
    plant_undeclared_cluster,
)
from simulator.violations.context import PlantContext, ScenarioError, notification_thresholds
from simulator.violations.identity import plant_clone, plant_replay, plant_sequence_reuse
from simulator.violations.location import (
    plant_forbidden_country,
    plant_gone_dark,
    plant_smuggled_chip,
    plant_wrong_facility,
)
from simulator.violations.power import (
    plant_ghost_chips,
    plant_host_power_misdeclared,
    plant_underreporting_meter,
)
from simulator.violations.reports import (
    plant_above_peak,
    plant_burst_hider,
    plant_one_sided_link,
    plant_underreporting_peers,
)

__all__ = [
    "PLANTS",
    "PlantContext",
    "ScenarioError",
    "notification_thresholds",
    "plant_burst_hider",
    "plant_host_power_misdeclared",
]


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
