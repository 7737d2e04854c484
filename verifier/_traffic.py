"""One pass over the interconnect claims of one report window, shared by the link rules.

A fleet window holds about ten link claims per chip (a million chips: ten million claims), so
the cluster, split, one-sided and peer-traffic rules read them in a single loop instead of four.
Each chip's claim about a peer is the sum of all link kinds to that peer; a chip that reported
the window twice (a retry or a replay, caught by other rules) counts once, with its larger
claim per peer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from verifier._common import Window
from verifier.facts import ChipFact, ReportFact

__all__ = ["WindowTraffic", "analyse_window"]


@dataclass(slots=True)
class WindowTraffic:
    """What the link rules need from one window."""

    window: Window
    seconds: float
    reports: Sequence[ReportFact]
    claims: dict[str, dict[str, int]]
    """reporter -> peer -> bytes (tx + rx, all link kinds) the reporter claims."""
    edges: list[tuple[str, str]] = field(default_factory=list)
    """Pairs where either end claims more than the cluster link threshold (each pair once)."""
    site_edges: list[tuple[str, str]] = field(default_factory=list)
    """Extra pairs across two facilities above the split rule's inter-site threshold."""
    one_sided: list[tuple[str, str, int, int | None]] = field(default_factory=list)
    """(claimant, peer, claimant's bytes, peer's bytes or None) for mismatched pairs."""
    idle_peer_bytes: dict[str, int] = field(default_factory=dict)
    """Idle-claiming chip -> bytes its peers claim to have exchanged with it."""

    _components: list[tuple[str, ...]] | None = None

    def components(self) -> list[tuple[str, ...]]:
        """Connected components of :attr:`edges` (computed once, shared by the cluster rules)."""
        if self._components is None:
            from verifier.clusters import components  # noqa: PLC0415 - clusters imports us

            self._components = components(self.edges)
        return self._components

    def reports_of(self) -> dict[str, list[ReportFact]]:
        """The window's reports by chip."""
        grouped: dict[str, list[ReportFact]] = defaultdict(list)
        for report in self.reports:
            grouped[report.chip_id].append(report)
        return grouped


def _claims(reports: Sequence[ReportFact]) -> dict[str, dict[str, int]]:
    claims: dict[str, dict[str, int]] = {}
    for report in reports:
        links = report.links
        chip_id = report.chip_id
        per_peer = {link.peer: link.tx_bytes + link.rx_bytes for link in links}
        if len(per_peer) != len(links):  # several link kinds to one peer: sum them
            per_peer = defaultdict(int)
            for link in links:
                per_peer[link.peer] += link.tx_bytes + link.rx_bytes
            per_peer = dict(per_peer)
        per_peer.pop(chip_id, None)
        previous = claims.get(chip_id)
        if previous is not None:
            for peer, total in previous.items():
                if total > per_peer.get(peer, -1):
                    per_peer[peer] = total
        claims[chip_id] = per_peer
    return claims


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
    claims = _claims(reports)
    traffic = WindowTraffic(window, seconds, reports, claims)
    to_bytes = seconds / 8
    edge_bytes = float("inf") if link_bits_per_s is None else link_bits_per_s * to_bytes
    site_bytes = edge_bytes if site_link_bits_per_s is None else site_link_bits_per_s * to_bytes
    site_bytes = min(site_bytes, edge_bytes)
    if one_sided is None:
        min_pair_bytes, fraction = float("inf"), 0.0
    else:
        min_pair_bytes, fraction = one_sided[0] * to_bytes, one_sided[1]
    idle_chips: set[str] = set()
    if idle is not None:
        idle_chips = {r.chip_id for r in reports if r.utilization <= idle[0]}
    floor = min(site_bytes, min_pair_bytes)
    edges, site_edges, sided = traffic.edges, traffic.site_edges, traffic.one_sided
    idle_bytes: dict[str, int] = defaultdict(int)
    empty: dict[str, int] = {}
    for a, per_peer in claims.items():
        for b, v in per_peer.items():
            if idle_chips and b in idle_chips:
                idle_bytes[b] += v
            back = claims.get(b, empty).get(a)
            if back is not None and b < a:
                continue  # the pair is handled from b's side
            top = v if back is None or v >= back else back
            if top <= floor:
                continue
            if top > edge_bytes:
                edges.append((a, b))
            elif top > site_bytes:
                ca, cb = chips.get(a), chips.get(b)
                if ca is not None and cb is not None and ca.facility_id != cb.facility_id:
                    site_edges.append((a, b))
            if top > min_pair_bytes:
                if back is None:
                    if b in claims or b not in chips:
                        sided.append((a, b, v, None))
                elif abs(v - back) > fraction * top:
                    sided.append((a, b, v, back))
    traffic.idle_peer_bytes = dict(idle_bytes)
    return traffic
