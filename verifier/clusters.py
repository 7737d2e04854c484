"""Undeclared-cluster detection: chips networked together above the policy's thresholds.

Per report window, chips are the nodes of an undirected graph; a pair is an edge when its mean
throughput over the window exceeds the bandwidth threshold. A connected component (a set of
chips *transitively* connected) whose summed peak compute exceeds the compute threshold is a
cluster, and is flagged unless one declaration in force over the whole window contains every
registered chip in it. Components flagged with the same chip set in several windows are merged
into one finding.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from verifier._common import reports_by_window
from verifier._traffic import WindowTraffic, analyse_window
from verifier.facts import ChipFact, DeclaredClusterFact, Snapshot
from verifier.findings import Finding, fingerprint, rfc3339
from verifier.params import UndeclaredClusterParams
from verifier.policy import CLUSTER_RULE_ID, Policy
from verifier.rules import Rule, RuleContext

__all__ = [
    "H100_PEAK_OPS",
    "KIND",
    "UNDECLARED_CLUSTER",
    "components",
    "find_undeclared_clusters",
    "pair_gbps",
]

KIND = "undeclared_cluster"
H100_PEAK_OPS = 989e12
"""Dense BF16 OP/s of one H100 SXM, the unit of ``equivalent_h100`` in the details."""

_Window = tuple[datetime, datetime]
_Key = TypeVar("_Key", int, str)


@dataclass(frozen=True, slots=True)
class _Component:
    """One flagged connected component in one window."""

    window: _Window
    members: tuple[str, ...]
    undeclared: frozenset[str]
    evidence: frozenset[int]
    edge_gbps: tuple[float, ...]


@dataclass(slots=True)
class _Merged:
    """The same chip set flagged in several windows, accumulated in window order."""

    members: tuple[str, ...]
    windows: list[_Window] = field(default_factory=list)
    undeclared: set[str] = field(default_factory=set)
    evidence: set[int] = field(default_factory=set)
    edge_gbps: list[float] = field(default_factory=list)


def _find(ctx: RuleContext) -> list[Finding]:
    if ctx.settings(UndeclaredClusterParams) is None:
        return []
    return _undeclared(ctx.snapshot, ctx.policy, ctx.traffic)


UNDECLARED_CLUSTER = Rule(rule_ids=(CLUSTER_RULE_ID,), kinds=(KIND,), find=_find)
"""Rule ``cluster.undeclared``, on the engine's shared per-window traffic analysis."""


def find_undeclared_clusters(snapshot: Snapshot, policy: Policy) -> list[Finding]:
    """Rule ``cluster.undeclared`` on its own, with its own pass over each window's link
    claims (edges above its own link threshold; the engine's shared pass uses the lower of the
    cluster and split thresholds).

    Only reports sharing the exact same ``(window_start, window_end)`` are compared: throughput
    is a rate over a window, and mixing windows would mix rates.
    """
    if not policy.cluster.enabled:
        return []
    traffic = [
        analyse_window(
            window,
            reports,
            snapshot.chips,
            link_bits_per_s=policy.cluster.params.link_threshold_bits_per_s,
            site_link_bits_per_s=None,
            one_sided=None,
            idle=None,
        )
        for window, reports in sorted(reports_by_window(snapshot.reports).items())
    ]
    return _undeclared(snapshot, policy, traffic)


def _undeclared(
    snapshot: Snapshot, policy: Policy, traffic: Sequence[WindowTraffic]
) -> list[Finding]:
    """One finding per undeclared cluster, sorted by subject then window."""
    params = policy.cluster.params
    merged: dict[tuple[str, ...], _Merged] = {}
    for window_traffic in traffic:
        for component in _flagged_components(
            window_traffic, snapshot.chips, snapshot.clusters, params
        ):
            entry = merged.setdefault(component.members, _Merged(component.members))
            entry.windows.append(component.window)
            entry.undeclared |= component.undeclared
            entry.evidence |= component.evidence
            entry.edge_gbps.extend(component.edge_gbps)

    findings = [_finding(entry, snapshot, policy) for entry in merged.values()]
    findings.sort(key=lambda f: f.subject_id)
    return findings


def components(edges: Iterable[tuple[str, str]]) -> list[tuple[str, ...]]:
    """Connected components of an edge list, each as a sorted tuple of chip ids.

    Union-find inlined (path halving, no recursion): this is the hot loop of a fleet window.
    """
    index: dict[str, int] = {}
    parent: list[int] = []
    for a, b in edges:
        ia = index.get(a)
        if ia is None:
            ia = index[a] = len(parent)
            parent.append(ia)
        ib = index.get(b)
        if ib is None:
            ib = index[b] = len(parent)
            parent.append(ib)
        while parent[ia] != ia:
            parent[ia] = parent[parent[ia]]
            ia = parent[ia]
        while parent[ib] != ib:
            parent[ib] = parent[parent[ib]]
            ib = parent[ib]
        if ia != ib:
            parent[ib] = ia
    groups: dict[int, list[str]] = {}
    for name, node in index.items():
        root = node
        while parent[root] != root:
            parent[root] = parent[parent[root]]
            root = parent[root]
        groups.setdefault(root, []).append(name)
    return [tuple(sorted(members)) for members in groups.values()]


def pair_gbps(members: Iterable[str], traffic: WindowTraffic) -> dict[tuple[str, str], float]:
    """Throughput in Gbit/s of every pair inside ``members``: the larger of both ends' claims."""
    inside = set(members)
    claims = traffic.claims_of(sorted(inside))
    rates: dict[tuple[str, str], float] = {}
    for a in sorted(inside):
        for b, total in claims.get(a, {}).items():
            if b in inside:
                key = (a, b) if a < b else (b, a)
                gbps = total * 8 / traffic.seconds / 1e9
                if gbps > rates.get(key, -1.0):
                    rates[key] = gbps
    return rates


def _flagged_components(
    traffic: WindowTraffic,
    chips: Mapping[str, ChipFact],
    declared: Sequence[DeclaredClusterFact],
    params: UndeclaredClusterParams,
) -> list[_Component]:
    window = traffic.window
    # Cheap filter first: most components in a real fleet are far below the compute threshold.
    threshold = params.compute_threshold_ops_per_s
    candidates = [
        members
        for members in traffic.heavy_components(threshold)
        if _total_peak_ops(members, chips) > threshold
    ]
    if not candidates:
        return []
    active = [d for d in declared if d.covers(*window)]
    declared_now: set[str] | None = None
    threshold_gbps = params.link_threshold_bits_per_s / 1e9
    flagged: list[_Component] = []
    for members in sorted(candidates):
        registered = frozenset(m for m in members if m in chips)
        if any(registered <= d.chip_ids for d in active):
            continue
        if declared_now is None:
            declared_now = set[str]().union(*(d.chip_ids for d in active))
        reports_by_chip = traffic.reports_of()
        evidence = frozenset(
            r.log_index
            for m in members
            for r in reports_by_chip.get(m, ())
            if r.log_index is not None
        )
        rates = pair_gbps(members, traffic)
        flagged.append(
            _Component(
                window=window,
                members=members,
                undeclared=frozenset(registered - declared_now),
                evidence=evidence,
                edge_gbps=tuple(rates[k] for k in sorted(rates) if rates[k] > threshold_gbps),
            )
        )
    return flagged


def _total_peak_ops(members: Iterable[str], chips: Mapping[str, ChipFact]) -> float:
    # Summed in sorted order so the float result is the same however the input was ordered.
    return sum(chips[m].peak_ops for m in sorted(members) if m in chips)


def _most_common(values: Iterable[_Key | None]) -> _Key | None:
    """The most frequent non-None value; ties go to the lowest."""
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return None
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


def _finding(entry: _Merged, snapshot: Snapshot, policy: Policy) -> Finding:
    rule = policy.cluster
    params = rule.params
    chips = snapshot.chips
    members = entry.members
    registered = [chips[m] for m in members if m in chips]
    unregistered = [m for m in members if m not in chips]
    total = _total_peak_ops(members, chips)
    equivalent = round(total / H100_PEAK_OPS, 1)
    facilities = Counter(c.facility_id for c in registered if c.facility_id is not None)
    countries = Counter(c.country for c in registered if c.country is not None)
    facility_id = _most_common(c.facility_id for c in registered)
    country = _most_common(c.country for c in registered)
    member_set = set(members)
    related = sorted(d.cluster_id for d in snapshot.clusters if member_set & d.chip_ids)
    start, end = entry.windows[0][0], entry.windows[-1][1]
    gbps = entry.edge_gbps
    subject_id = "undeclared-" + hashlib.sha256("\n".join(members).encode()).hexdigest()[:16]

    where = f"facility {facility_id}" if facility_id is not None else "no declared facility"
    if len(facilities) > 1:
        where = f"{len(facilities)} facilities (mostly facility {facility_id})"
    summary = (
        f"{len(members)} chips ({equivalent:g} H100-equivalent, {total:.3g} OP/s) at {where} "
        f"were networked above {params.link_threshold_bits_per_s / 1e9:g} Gbit/s with no "
        f"declared cluster covering them, in {len(entry.windows)} window(s) "
        f"from {rfc3339(start)} to {rfc3339(end)}."
    )
    details: dict[str, object] = {
        "chip_ids": list(members),
        "chip_count": len(members),
        "registered_chip_count": len(registered),
        "unregistered_peers": unregistered,
        "undeclared_chip_ids": sorted(entry.undeclared),
        "related_declared_cluster_ids": related,
        "total_peak_ops": total,
        "equivalent_h100": equivalent,
        "facilities": {str(k): facilities[k] for k in sorted(facilities)},
        "countries": {k: countries[k] for k in sorted(countries)},
        "linked_pairs_observed": len(gbps),
        "max_pair_throughput_gbps": round(max(gbps), 3),
        "mean_pair_throughput_gbps": round(sum(gbps) / len(gbps), 3),
        "windows_observed": len(entry.windows),
        "windows": [[rfc3339(s), rfc3339(e)] for s, e in entry.windows],
        "link_threshold_bits_per_s": params.link_threshold_bits_per_s,
        "compute_threshold_ops_per_s": params.compute_threshold_ops_per_s,
    }
    return Finding(
        rule_id=rule.rule_id,
        rule_version=rule.version,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        kind=KIND,
        severity=rule.severity,
        subject_type="cluster",
        subject_id=subject_id,
        facility_id=facility_id,
        country=country,
        window_start=start,
        window_end=end,
        summary=summary,
        details=details,
        evidence=tuple(sorted(entry.evidence)),
        fingerprint=fingerprint(
            rule.rule_id, "cluster", subject_id, start, policy_id=policy.policy_id
        ),
        citation=rule.citation,
    )
