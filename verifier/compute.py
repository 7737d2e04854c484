"""Reported compute and energy against physics and declarations.

* ``chip.above_peak``: a report claiming utilization above 1 or energy above the board's peak
  power times the window, beyond ``tolerance_fraction``: the numbers cannot be real.
* ``cluster.budget_exceeded``: a declared cluster's cumulative compute (sum over its chips'
  reports inside the declaration of ``utilization x peak_ops x seconds``) above its declared
  budget by more than ``tolerance_fraction``.
* ``cluster.threshold_unnotified``: that cumulative compute crossing a legal threshold
  (``thresholds_flop``: 1e25 EU AI Act, 1e26 US EO 14110) with no notification for that
  threshold received before the crossing window ended plus ``notification_grace_s``. Not
  raised before that deadline has passed (``as_of``): until then the notice may still come.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import reduce
from itertools import compress, groupby, repeat
from operator import add, attrgetter, is_not, mul

from verifier._common import Window, make_finding
from verifier._index import SnapshotIndex, report_order
from verifier.facts import DeclaredClusterFact, ReportFact, Snapshot
from verifier.findings import Finding, rfc3339
from verifier.params import AbovePeakParams, BudgetExceededParams, ThresholdUnnotifiedParams
from verifier.rules import Rule, RuleContext

__all__ = ["ABOVE_PEAK", "CLUSTER_COMPUTE", "THRESHOLD_RULE_ID"]

ABOVE_PEAK_RULE_ID = AbovePeakParams.rule_id
BUDGET_RULE_ID = BudgetExceededParams.rule_id
THRESHOLD_RULE_ID = ThresholdUnnotifiedParams.rule_id
_utilization = attrgetter("utilization")
_log_index = attrgetter("log_index")
_peak_power = attrgetter("peak_power_w")
_peak_ops = attrgetter("peak_ops")


def _find_above_peak(ctx: RuleContext) -> list[Finding]:
    """One finding per chip with physically impossible reports."""
    rule = ctx.settings(AbovePeakParams)
    if rule is None:
        return []
    snapshot, policy = ctx.snapshot, ctx.policy
    limit = 1 + rule.params.tolerance_fraction
    chips = snapshot.chips
    chips_get = chips.get
    hits: dict[str, list[tuple[ReportFact, float, float | None]]] = defaultdict(list)
    last_start: datetime | None = None
    last_end: datetime | None = None
    seconds = 0.0
    reports: Iterable[ReportFact] = snapshot.reports
    lowest_w = min(filter(None, map(_peak_power, chips.values())), default=None)
    windows = ctx.index.by_window()
    if lowest_w is not None and limit >= 0 and windows:
        # A report can only be over when its utilization is, or its energy exceeds the
        # smallest peak power times the shortest window (less a margin for rounding): a
        # filter in one comprehension, then the exact test below on the few that pass.
        shortest = min((w[1] - w[0]).total_seconds() for w in windows)
        floor_j = limit * lowest_w * shortest * (1 - 1e-9)
        reports = [r for r in reports if r.utilization > limit or r.energy_j > floor_j]
    for r in reports:
        if r.utilization > limit:
            hits[r.chip_id].append((r, r.utilization, None))
            continue
        chip = chips_get(r.chip_id)
        if chip is None:
            continue
        peak_w = chip.peak_power_w
        if peak_w is None or not peak_w:
            continue
        if r.window_start != last_start or r.window_end != last_end:
            last_start, last_end = r.window_start, r.window_end
            seconds = (last_end - last_start).total_seconds()
        power_share = r.energy_j / (peak_w * seconds)
        if power_share > limit:
            hits[r.chip_id].append((r, r.utilization, power_share))
    findings: list[Finding] = []
    for chip_id in sorted(hits):
        found = sorted(hits[chip_id], key=lambda h: (h[0].window_start, h[0].seq))
        chip = chips.get(chip_id)
        worst_util = max(h[1] for h in found)
        shares = [h[2] for h in found if h[2] is not None]
        worst_power = max(shares) if shares else None
        findings.append(
            make_finding(
                rule,
                policy,
                kind="above_peak",
                subject_type="chip",
                subject_id=chip_id,
                facility_id=None if chip is None else chip.facility_id,
                country=None if chip is None else chip.country,
                window_start=found[0][0].window_start,
                window_end=found[-1][0].window_end,
                summary=(
                    f"Chip {chip_id} reported more than its physical peak in {len(found)} "
                    f"window(s): utilization up to {worst_util:.2f}"
                    + (
                        f", energy up to {worst_power:.2f} x its peak power"
                        if worst_power is not None
                        else ""
                    )
                    + "."
                ),
                details={
                    "chip_id": chip_id,
                    "reports": len(found),
                    "max_utilization": worst_util,
                    "max_energy_over_peak": None if worst_power is None else round(worst_power, 4),
                    "peak_ops": None if chip is None else chip.peak_ops,
                    "peak_power_w": None if chip is None else chip.peak_power_w,
                    "tolerance_fraction": rule.params.tolerance_fraction,
                },
                evidence=[h[0].log_index for h in found],
            )
        )
    return findings


def _cumulative(
    clusters: Sequence[DeclaredClusterFact], snapshot: Snapshot, index: SnapshotIndex
) -> list[list[tuple[Window, float, list[int | None]]]]:
    """For each cluster, per window (in order) its running total compute and that window's
    evidence. Each window's compute is summed over the cluster's registered chips in chip id
    order (then report order), so the float result never depends on input order."""
    chips = snapshot.chips
    # Each cluster's registered chips in id order, and their peak OP/s.
    member_ids: list[list[str]] = [[] for _ in clusters]
    only_one: dict[str, int] = {}
    for k, cluster in enumerate(clusters):
        only_one.update(dict.fromkeys(cluster.chip_ids, k))
    ordered = index.sorted_chip_ids()
    if len(only_one) == sum(len(c.chip_ids) for c in clusters):  # no chip in two clusters
        # Grouped by cluster with a stable sort in C.
        cluster_of = list(map(only_one.get, ordered, repeat(-1)))
        by_cluster = sorted(range(len(ordered)), key=cluster_of.__getitem__)
        for k, positions in groupby(by_cluster, key=cluster_of.__getitem__):
            if k >= 0:
                member_ids[k] = list(map(ordered.__getitem__, positions))
    else:
        member_of: dict[str, list[int]] = defaultdict(list)
        for k, cluster in enumerate(clusters):
            for chip_id in cluster.chip_ids:
                member_of[chip_id].append(k)
        for chip_id in ordered:
            for k in member_of.get(chip_id, ()):
                member_ids[k].append(chip_id)
    member_peaks = [list(map(_peak_ops, map(chips.__getitem__, ids))) for ids in member_ids]
    series: list[list[tuple[Window, float, list[int | None]]]] = [[] for _ in clusters]
    running = [0.0] * len(clusters)
    for window, reports in index.by_window().items():
        inside = [
            k
            for k, c in enumerate(clusters)
            if member_ids[k] and not (window[0] < c.start or window[1] > c.end)
        ]
        if not inside:
            continue
        seconds = (window[1] - window[0]).total_seconds()
        single = index.window_reports(window)
        several: dict[str, list[ReportFact]] = {}
        if len(single) != len(reports):  # some chip reported the window twice
            for r in reports:
                several.setdefault(r.chip_id, []).append(r)
            for duplicates in several.values():
                duplicates.sort(key=report_order)  # float sums must not follow input order
        for k in inside:
            if not several or several.keys().isdisjoint(member_ids[k]):
                # One report per chip: the whole sum in C (map, reduce), same additions in
                # the same order as the loop below.
                found = list(map(single.get, member_ids[k]))
                peaks: Iterable[float] = member_peaks[k]
                mask = list(map(is_not, found, repeat(None)))
                if not all(mask):  # members that did not report the window
                    found = list(compress(found, mask))
                    peaks = compress(peaks, mask)
                if found:
                    used = map(min, map(_utilization, found), repeat(1.0))
                    total = reduce(add, map(mul, map(mul, used, peaks), repeat(seconds)), 0.0)
                    running[k] += total
                    series[k].append((window, running[k], list(map(_log_index, found))))
                continue
            total = 0.0
            touched = False
            evidence: list[int | None] = []
            for chip_id, peak in zip(member_ids[k], member_peaks[k], strict=True):
                one = single.get(chip_id)
                if one is None:
                    continue
                if several and chip_id in several:
                    for rr in several[chip_id]:
                        u = rr.utilization
                        total += (1.0 if u > 1.0 else u) * peak * seconds
                        evidence.append(rr.log_index)
                else:
                    u = one.utilization
                    total += (1.0 if u > 1.0 else u) * peak * seconds
                    evidence.append(one.log_index)
                touched = True
            if touched:
                running[k] += total
                series[k].append((window, running[k], evidence))
    return series


def _find_cluster_compute(ctx: RuleContext) -> list[Finding]:
    """Budget-exceeded findings, then threshold-unnotified findings, per declared cluster (one
    running total of each cluster's compute serves both)."""
    budget_rule = ctx.settings(BudgetExceededParams)
    notify_rule = ctx.settings(ThresholdUnnotifiedParams)
    snapshot, policy, as_of, index = ctx.snapshot, ctx.policy, ctx.as_of, ctx.index
    if (budget_rule is None and notify_rule is None) or not snapshot.clusters:
        return []
    clusters = sorted(snapshot.clusters, key=lambda c: c.cluster_id)
    all_series = _cumulative(clusters, snapshot, index)
    over: list[Finding] = []
    unnotified: list[Finding] = []
    for cluster, series in zip(clusters, all_series, strict=True):
        if not series:
            continue
        if budget_rule is not None and cluster.compute_budget_flop is not None:
            limit = cluster.compute_budget_flop * (1 + budget_rule.params.tolerance_fraction)
            crossing = next((i for i, (_, total, _) in enumerate(series) if total > limit), None)
            if crossing is not None:
                window, total, _ = series[crossing]
                final = series[-1][1]
                over.append(
                    make_finding(
                        budget_rule,
                        policy,
                        kind="budget_exceeded",
                        subject_type="declared_cluster",
                        subject_id=str(cluster.cluster_id),
                        facility_id=cluster.facility_id,
                        country=None,
                        window_start=window[0],
                        window_end=series[-1][0][1],
                        summary=(
                            f"Declared cluster {cluster.cluster_id} ({cluster.name}) used "
                            f"{final:.3g} FLOP, above its declared budget of "
                            f"{cluster.compute_budget_flop:.3g} FLOP since {rfc3339(window[0])}."
                        ),
                        details={
                            "cluster_id": cluster.cluster_id,
                            "budget_flop": cluster.compute_budget_flop,
                            "flop_at_crossing": total,
                            "flop_so_far": final,
                            "crossing_window": [rfc3339(window[0]), rfc3339(window[1])],
                        },
                        evidence=[cluster.log_index, *series[crossing][2]],
                    )
                )
        if notify_rule is None:
            continue
        grace = timedelta(seconds=notify_rule.params.notification_grace_s)
        for threshold in notify_rule.params.thresholds_flop:
            crossing = next(
                (i for i, (_, total, _) in enumerate(series) if total > threshold), None
            )
            if crossing is None:
                continue
            window, total, window_evidence = series[crossing]
            deadline: datetime = window[1] + grace
            if as_of < deadline:
                continue  # the grace has not ended: the notice may still arrive
            notified = [
                n
                for n in cluster.notifications
                if n.threshold_flop <= threshold
                and n.threshold_flop >= threshold * 0.999999
                and n.received_at <= deadline
            ]
            if notified:
                continue
            unnotified.append(
                make_finding(
                    notify_rule,
                    policy,
                    kind="threshold_unnotified",
                    subject_type="declared_cluster",
                    subject_id=f"{cluster.cluster_id}@{threshold:.0e}",
                    facility_id=cluster.facility_id,
                    country=None,
                    window_start=window[0],
                    window_end=window[1],
                    summary=(
                        f"Declared cluster {cluster.cluster_id} ({cluster.name}) crossed "
                        f"{threshold:.0e} FLOP in the window from {rfc3339(window[0])} without "
                        "a notification for that threshold."
                    ),
                    details={
                        "cluster_id": cluster.cluster_id,
                        "threshold_flop": threshold,
                        "flop_at_crossing": total,
                        "crossing_window": [rfc3339(window[0]), rfc3339(window[1])],
                        "notification_grace_s": grace.total_seconds(),
                        "deadline": rfc3339(deadline),
                        "notifications": [
                            {
                                "threshold_flop": n.threshold_flop,
                                "notified_at": (
                                    None if n.notified_at is None else rfc3339(n.notified_at)
                                ),
                                "received_at": rfc3339(n.received_at),
                            }
                            for n in sorted(
                                cluster.notifications,
                                key=lambda n: (n.received_at, n.threshold_flop),
                            )
                        ],
                    },
                    evidence=[cluster.log_index, *window_evidence],
                )
            )
    return over + unnotified


ABOVE_PEAK = Rule(rule_ids=(ABOVE_PEAK_RULE_ID,), kinds=("above_peak",), find=_find_above_peak)
CLUSTER_COMPUTE = Rule(
    rule_ids=(BUDGET_RULE_ID, THRESHOLD_RULE_ID),
    kinds=("budget_exceeded", "threshold_unnotified"),
    find=_find_cluster_compute,
)
"""``cluster.budget_exceeded`` and ``cluster.threshold_unnotified`` over one running total of
each declared cluster's compute."""
