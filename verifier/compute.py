"""Reported compute and energy against physics and declarations.

* ``chip.above_peak``: a report claiming utilization above 1 or energy above the board's peak
  power times the window, beyond ``tolerance_fraction``: the numbers cannot be real.
* ``cluster.budget_exceeded``: a declared cluster's cumulative compute (sum over its chips'
  reports inside the declaration of ``utilization x peak_ops x seconds``) above its declared
  budget by more than ``tolerance_fraction``.
* ``cluster.threshold_unnotified``: that cumulative compute crossing a legal threshold
  (``thresholds_flop``: 1e25 EU AI Act, 1e26 US EO 14110) with no notification for that
  threshold filed before the crossing window ended plus ``notification_grace_s``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from verifier._common import Window, make_finding
from verifier.facts import DeclaredClusterFact, ReportFact, Snapshot
from verifier.findings import Finding, rfc3339
from verifier.policy import Policy

__all__ = ["find_above_peak", "find_budget_findings"]

ABOVE_PEAK_RULE_ID = "chip.above_peak"
BUDGET_RULE_ID = "cluster.budget_exceeded"
THRESHOLD_RULE_ID = "cluster.threshold_unnotified"


def find_above_peak(snapshot: Snapshot, policy: Policy) -> list[Finding]:
    """One finding per chip with physically impossible reports."""
    rule = policy.rule(ABOVE_PEAK_RULE_ID)
    if rule is None:
        return []
    limit = 1 + rule.number("tolerance_fraction")
    chips = snapshot.chips
    hits: dict[str, list[tuple[ReportFact, float, float | None]]] = defaultdict(list)
    for r in snapshot.reports:
        power_share: float | None = None
        if r.utilization > limit:
            hits[r.chip_id].append((r, r.utilization, None))
            continue
        chip = chips.get(r.chip_id)
        if chip is None or chip.peak_power_w is None or not chip.peak_power_w:
            continue
        seconds = (r.window_end - r.window_start).total_seconds()
        power_share = r.energy_j / (chip.peak_power_w * seconds)
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
                    "tolerance_fraction": rule.number("tolerance_fraction"),
                },
                evidence=[h[0].log_index for h in found],
            )
        )
    return findings


def _cumulative(
    cluster: DeclaredClusterFact, by_chip: dict[str, list[ReportFact]], snapshot: Snapshot
) -> list[tuple[Window, float, list[int | None]]]:
    """Per window (in order) the cluster's running total compute and that window's evidence."""
    per_window: dict[Window, float] = defaultdict(float)
    evidence: dict[Window, list[int | None]] = defaultdict(list)
    for chip_id in sorted(cluster.chip_ids):
        chip = snapshot.chips.get(chip_id)
        if chip is None:
            continue
        for r in by_chip.get(chip_id, ()):
            if r.window_start < cluster.start or r.window_end > cluster.end:
                continue
            w = (r.window_start, r.window_end)
            seconds = (r.window_end - r.window_start).total_seconds()
            per_window[w] += min(r.utilization, 1.0) * chip.peak_ops * seconds
            evidence[w].append(r.log_index)
    running = 0.0
    out = []
    for w in sorted(per_window):
        running += per_window[w]
        out.append((w, running, evidence[w]))
    return out


def find_budget_findings(snapshot: Snapshot, policy: Policy) -> tuple[list[Finding], list[Finding]]:
    """(budget-exceeded findings, threshold-unnotified findings) per declared cluster."""
    budget_rule = policy.rule(BUDGET_RULE_ID)
    notify_rule = policy.rule(THRESHOLD_RULE_ID)
    if (budget_rule is None and notify_rule is None) or not snapshot.clusters:
        return [], []
    members = set[str]().union(*(c.chip_ids for c in snapshot.clusters))
    by_chip: dict[str, list[ReportFact]] = defaultdict(list)
    for r in snapshot.reports:
        if r.chip_id in members:
            by_chip[r.chip_id].append(r)
    over: list[Finding] = []
    unnotified: list[Finding] = []
    for cluster in sorted(snapshot.clusters, key=lambda c: c.cluster_id):
        series = _cumulative(cluster, by_chip, snapshot)
        if not series:
            continue
        if budget_rule is not None and cluster.compute_budget_flop is not None:
            limit = cluster.compute_budget_flop * (1 + budget_rule.number("tolerance_fraction"))
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
        grace = timedelta(seconds=notify_rule.number("notification_grace_s"))
        for threshold in notify_rule.lists["thresholds_flop"]:
            crossing = next(
                (i for i, (_, total, _) in enumerate(series) if total > threshold), None
            )
            if crossing is None:
                continue
            window, total, window_evidence = series[crossing]
            deadline: datetime = window[1] + grace
            notified = [
                n
                for n in cluster.notifications
                if n.threshold_flop <= threshold
                and n.threshold_flop >= threshold * 0.999999
                and n.notified_at <= deadline
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
                        "notifications": [
                            {
                                "threshold_flop": n.threshold_flop,
                                "notified_at": rfc3339(n.notified_at),
                            }
                            for n in sorted(cluster.notifications, key=lambda n: n.notified_at)
                        ],
                    },
                    evidence=[cluster.log_index, *window_evidence],
                )
            )
    return over, unnotified
