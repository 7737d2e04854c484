"""One pass over the interconnect claims of one report window, shared by the link rules.

A fleet window holds about ten link claims per chip (a million chips: ten million claims), so
the cluster, split, one-sided and peer-traffic rules read them in a single loop instead of four.
Each chip's claim about a peer is the sum of all link kinds to that peer; a chip that reported
the window twice (a retry or a replay, caught by other rules) counts once, with its larger
claim per peer.

How the loop stays cheap (it is the verifier's hot path): chips get integer ids for the window;
every chip's claims are one ``peer -> bytes`` dict; each *pair* is judged once, by the first of
its two ends to be visited, which takes the other end's claim out of that end's dict (so the
other end never sees the pair again). Connected components are a union-find over the ids (path
halving); only components that a rule can flag (enough compute, or more than one facility) are
turned into sorted chip-id tuples.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, eq, ne, not_

from verifier._common import Window
from verifier._index import SnapshotIndex
from verifier.facts import ChipFact, ReportFact
from verifier.params import (
    OneSidedLinkParams,
    SplitClusterParams,
    UndeclaredClusterParams,
    UnderreportingParams,
)
from verifier.policy import Policy

__all__ = ["WindowTraffic", "analyse_window", "analyse_windows", "claims_by_chip"]

_links = attrgetter("links")
_chip_id = attrgetter("chip_id")
_NOT_REGISTERED = object()
"""Facility key of a peer that is not a registered chip (differs from every facility id)."""


def claims_by_chip(reports: Sequence[ReportFact]) -> dict[str, dict[str, int]]:
    """reporter -> peer -> bytes (tx + rx, all link kinds), in first-report order; a chip's
    repeated reports in the window keep, per peer, the larger claim."""
    links_of = list(map(_links, reports))
    dicts = [{link.peer: link.tx_bytes + link.rx_bytes for link in links} for links in links_of]
    chip_ids = list(map(_chip_id, reports))
    # The rare cases are found with C-level scans and fixed one report at a time.
    one_kind = list(map(eq, map(len, dicts), map(len, links_of)))
    if not all(one_kind):  # several link kinds to one peer: sum them
        for i in compress(range(len(dicts)), map(not_, one_kind)):
            summed: dict[str, int] = defaultdict(int)
            for link in links_of[i]:
                summed[link.peer] += link.tx_bytes + link.rx_bytes
            dicts[i] = dict(summed)
    about_itself = list(map(dict.__contains__, dicts, chip_ids))
    if any(about_itself):
        for i in compress(range(len(dicts)), about_itself):
            del dicts[i][chip_ids[i]]
    claims = dict(zip(chip_ids, dicts, strict=True))
    if len(claims) != len(dicts):  # chips that reported the window more than once
        repeated = {c for c, n in Counter(chip_ids).items() if n > 1}
        merged: dict[str, dict[str, int]] = {}
        for i in compress(range(len(dicts)), map(repeated.__contains__, chip_ids)):
            chip_id, per_peer = chip_ids[i], dicts[i]
            previous = merged.get(chip_id)
            if previous is not None:
                for peer, total in previous.items():
                    if total > per_peer.get(peer, -1):
                        per_peer[peer] = total
            merged[chip_id] = per_peer
        claims.update(merged)  # each keeps its first position
    return claims


@dataclass(slots=True)
class WindowTraffic:
    """What the link rules need from one window."""

    window: Window
    seconds: float
    reports: Sequence[ReportFact]
    chips: Mapping[str, ChipFact]
    ids: list[str]
    """Chip id of each node: the window's reporters, then peers that did not report."""
    parent: list[int]
    """Union-find over the cluster edges (pairs where either end claims more than the cluster
    link threshold)."""
    site_edges: list[tuple[int, int]] = field(default_factory=list)
    """Extra pairs across two facilities above the split rule's inter-site threshold."""
    one_sided: list[tuple[str, str, int, int | None]] = field(default_factory=list)
    """(claimant, peer, claimant's bytes, peer's bytes or None) for mismatched pairs."""
    idle_peer_bytes: dict[str, int] = field(default_factory=dict)
    """Idle-claiming chip -> bytes its peers claim to have exchanged with it."""
    idle_peers: dict[str, list[str]] = field(default_factory=dict)
    """Idle-claiming chip -> the chips claiming traffic with it."""
    has_edges: bool = False

    _by_chip: dict[str, list[ReportFact]] | None = None
    _roots: list[int] | None = None
    _chip_facts: list[ChipFact | None] | None = None

    def reports_of(self) -> dict[str, list[ReportFact]]:
        """The window's reports by chip (computed once)."""
        if self._by_chip is None:
            grouped: dict[str, list[ReportFact]] = defaultdict(list)
            for report in self.reports:
                grouped[report.chip_id].append(report)
            self._by_chip = grouped
        return self._by_chip

    def claims_of(self, members: Sequence[str]) -> dict[str, dict[str, int]]:
        """The merged claims (as :func:`claims_by_chip`) of the given chips only."""
        by_chip = self.reports_of()
        return claims_by_chip([r for m in members for r in by_chip.get(m, ())])

    def heavy_components(self, min_total_peak_ops: float) -> list[tuple[str, ...]]:
        """Components of the cluster edges that have enough chips for their summed peak
        compute to exceed ``min_total_peak_ops`` (a superset: the caller applies the exact
        test), each as a sorted tuple of chip ids."""
        if not self.has_edges:
            return []
        roots = self._cluster_roots()
        facts = self._facts()
        top = max((c.peak_ops for c in facts if c is not None), default=0.0)
        # size x the largest peak bounds any summation order of the component's peaks (the
        # factor covers rounding), so no component that could pass is left out.
        wanted = {
            root
            for root, size in Counter(roots).items()
            if size >= 2 and size * top * (1 + 1e-6) > min_total_peak_ops
        }
        return self._materialise(roots, wanted)

    def mixed_components(self) -> list[tuple[str, ...]]:
        """Components of cluster edges plus inter-site edges whose chips are not all at one
        facility (or include a peer that is not registered), as sorted chip-id tuples."""
        if not self.has_edges and not self.site_edges:
            return []
        if self.site_edges:
            parent = self.parent.copy()
            for a, b in self.site_edges:
                ra, rb = _find(parent, a), _find(parent, b)
                if ra != rb:
                    parent[rb] = ra
            roots = _roots(parent)
        else:
            roots = self._cluster_roots()
        keys: list[object] = [
            _NOT_REGISTERED if c is None else c.facility_id for c in self._facts()
        ]
        # A component is mixed when some member's key differs from its root's.
        root_keys = list(map(keys.__getitem__, roots))
        mixed = set(compress(roots, map(ne, keys, root_keys)))
        return self._materialise(roots, mixed)

    def _cluster_roots(self) -> list[int]:
        if self._roots is None:
            self._roots = _roots(self.parent)
        return self._roots

    def _facts(self) -> list[ChipFact | None]:
        if self._chip_facts is None:
            self._chip_facts = list(map(self.chips.get, self.ids))
        return self._chip_facts

    def _materialise(self, roots: list[int], wanted: set[int]) -> list[tuple[str, ...]]:
        if not wanted:
            return []
        groups: dict[int, list[str]] = defaultdict(list)
        ids = self.ids
        for node in compress(range(len(roots)), map(wanted.__contains__, roots)):
            groups[roots[node]].append(ids[node])
        return [tuple(sorted(members)) for members in groups.values() if len(members) > 1]


def _find(parent: list[int], node: int) -> int:
    while parent[node] != node:
        parent[node] = parent[parent[node]]
        node = parent[node]
    return node


def _roots(parent: list[int]) -> list[int]:
    """The root of every node (compressing paths on the way)."""
    roots = []
    for node in range(len(parent)):
        root = node
        while parent[root] != root:
            parent[root] = parent[parent[root]]
            root = parent[root]
        roots.append(root)
    return roots


def analyse_windows(index: SnapshotIndex, policy: Policy) -> list[WindowTraffic]:
    """Every window of the snapshot (in order) read once for all four link rules, with the
    thresholds of those the policy enables: cluster edges above the lower of the cluster and
    split link thresholds, inter-site edges, one-sided pairs, peers of idle-claiming chips."""
    cluster = policy.settings(UndeclaredClusterParams)
    split = policy.settings(SplitClusterParams)
    sided = policy.settings(OneSidedLinkParams)
    under = policy.settings(UnderreportingParams)
    link_bits = None if cluster is None else cluster.params.link_threshold_bits_per_s
    if split is not None:
        split_bits = split.params.link_threshold_bits_per_s
        link_bits = split_bits if link_bits is None else min(link_bits, split_bits)
    site_bits = None if split is None else split.params.inter_site_link_threshold_bits_per_s
    one_sided = (
        None if sided is None else (sided.params.min_bits_per_s, sided.params.mismatch_fraction)
    )
    idle = None if under is None else (under.params.idle_utilization,)
    chips = index.snapshot.chips
    return [
        analyse_window(
            window,
            reports,
            chips,
            link_bits_per_s=link_bits,
            site_link_bits_per_s=site_bits,
            one_sided=one_sided,
            idle=idle,
        )
        for window, reports in index.by_window().items()
    ]


def analyse_window(
    window: Window,
    reports: Sequence[ReportFact],
    chips: Mapping[str, ChipFact],
    *,
    link_bits_per_s: float | None,
    site_link_bits_per_s: float | None,
    one_sided: tuple[float, float] | None,
    idle: tuple[float, ...] | None,
) -> WindowTraffic:
    """Read every claim of the window once.

    ``link_bits_per_s``: cluster edge threshold (``None``: no edges). ``site_link_bits_per_s``:
    lower threshold for edges between chips declared at different facilities (split rule).
    ``one_sided``: ``(min_bits_per_s, mismatch_fraction)``. ``idle``: ``(idle_utilization,)``
    to collect peers' traffic with idle-claiming chips.
    """
    seconds = (window[1] - window[0]).total_seconds()
    claims = claims_by_chip(reports)
    ids = list(claims)
    dicts = list(claims.values())
    reporters = len(ids)
    index = dict(zip(ids, range(reporters), strict=True))
    extra: dict[str, int] = {}  # ids of peers that did not report the window
    parent = list(range(reporters))
    traffic = WindowTraffic(window, seconds, reports, chips, ids, parent)
    to_bytes = seconds / 8
    edge_bytes = float("inf") if link_bits_per_s is None else link_bits_per_s * to_bytes
    site_bytes = edge_bytes if site_link_bits_per_s is None else site_link_bits_per_s * to_bytes
    site_bytes = min(site_bytes, edge_bytes)
    if one_sided is None:
        min_pair_bytes, fraction = float("inf"), 0.0
    else:
        min_pair_bytes, fraction = one_sided[0] * to_bytes, one_sided[1]
    floor = min(site_bytes, min_pair_bytes)
    site_edges, sided = traffic.site_edges, traffic.one_sided
    index_get = index.get

    # Peers' claims about idle-claiming chips. Claims the idle chip returns are read here,
    # before the pass below takes them apart; one-way claims are counted in the pass.
    is_idle = bytearray(reporters)
    any_idle = False
    idle_bytes: dict[str, int] = defaultdict(int)
    idle_peers: dict[str, list[str]] = defaultdict(list)
    if idle is not None:
        limit = idle[0]
        for r in reports:
            if r.utilization <= limit:
                is_idle[index[r.chip_id]] = 1
                any_idle = True
        if any_idle:
            for ic in range(reporters):
                if is_idle[ic]:
                    c = ids[ic]
                    for p in dicts[ic]:
                        ip = index_get(p)
                        if ip is not None:
                            w = dicts[ip].get(c)
                            if w is not None:
                                idle_bytes[c] += w
                                idle_peers[c].append(p)

    has_edges = False
    for ia in range(reporters):
        per_peer = dicts[ia]
        if not per_peer:
            continue
        a = ids[ia]
        ra = ia
        while parent[ra] != ra:
            parent[ra] = parent[parent[ra]]
            ra = parent[ra]
        for b, v in per_peer.items():
            ib = index_get(b)
            reporter = ib is not None
            if ib is not None:
                # The other end's claim about a, taken out so that b never judges the pair.
                back = dicts[ib].pop(a, None)
                if back is not None:
                    # Both ends claim the pair: the common case, kept short.
                    if v >= back:
                        top, gap = v, v - back
                    else:
                        top, gap = back, back - v
                    if top > edge_bytes:
                        rb = ib
                        while parent[rb] != rb:
                            parent[rb] = parent[parent[rb]]
                            rb = parent[rb]
                        if rb != ra:
                            parent[rb] = ra
                        has_edges = True
                        if top > min_pair_bytes and gap > fraction * top:
                            sided.append((a, b, v, back) if a < b else (b, a, back, v))
                        continue
                elif any_idle and is_idle[ib]:
                    idle_bytes[b] += v
                    idle_peers[b].append(a)
            else:
                back = None
            top = v if back is None or v >= back else back
            if top <= floor:
                continue
            if top > edge_bytes:
                if ib is None:
                    ib = extra.get(b)
                    if ib is None:
                        ib = extra[b] = len(ids)
                        ids.append(b)
                        parent.append(ib)
                rb = ib
                while parent[rb] != rb:
                    parent[rb] = parent[parent[rb]]
                    rb = parent[rb]
                if rb != ra:
                    parent[rb] = ra
                has_edges = True
            elif top > site_bytes:
                ca, cb = chips.get(a), chips.get(b)
                if ca is not None and cb is not None and ca.facility_id != cb.facility_id:
                    if ib is None:
                        ib = extra.get(b)
                        if ib is None:
                            ib = extra[b] = len(ids)
                            ids.append(b)
                            parent.append(ib)
                    site_edges.append((ia, ib))
            if top > min_pair_bytes:
                if back is None:
                    if reporter or b not in chips:
                        sided.append((a, b, v, None))
                elif abs(v - back) > fraction * top:
                    sided.append((a, b, v, back) if a < b else (b, a, back, v))
    traffic.has_edges = has_edges
    traffic.idle_peer_bytes = dict(idle_bytes)
    traffic.idle_peers = dict(idle_peers)
    return traffic
