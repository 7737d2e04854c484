"""Rules over the interconnect graph beyond the undeclared cluster.

* ``cluster.split``: chips linked above ``link_threshold_bits_per_s`` (or, between two
  facilities, above the lower ``inter_site_link_threshold_bits_per_s``) that span several
  facilities, with a total peak compute above ``site_compute_threshold_ops_per_s`` while no
  single facility's share is above it: a cluster cut in pieces to stay under a per-site limit.
* ``link.one_sided``: a pair whose busier end claims more than ``min_bits_per_s`` while the
  other end, which reported that window, does not mention it or claims a total differing by
  more than ``mismatch_fraction``. A peer that is not registered at all also counts.
* ``chip.underreporting`` (peer side): a chip claiming utilization at most
  ``idle_utilization`` while its peers claim more traffic with it than its links can carry in
  the time it says it was busy: more than ``peer_traffic_bits_per_s`` *and* more than
  ``capacity x max(utilization, busy_time_floor)``, with the capacity from the policy's
  ``link_capacity_bits_per_s`` table for the chip's model
  (:meth:`verifier.params.UnderreportingParams.carried_bits_per_s`).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from verifier._common import Window, make_finding
from verifier.clusters import H100_PEAK_OPS
from verifier.findings import Finding, rfc3339
from verifier.params import OneSidedLinkParams, SplitClusterParams, UnderreportingParams
from verifier.rules import Rule, RuleContext

__all__ = ["ONE_SIDED_LINK", "SPLIT_CLUSTER", "UNDERREPORTING_PEERS"]

SPLIT_RULE_ID = SplitClusterParams.rule_id
ONE_SIDED_RULE_ID = OneSidedLinkParams.rule_id
UNDERREPORTING_RULE_ID = UnderreportingParams.rule_id


@dataclass(slots=True)
class _Seen:
    windows: list[Window] = field(default_factory=list)
    evidence: set[int] = field(default_factory=set)
    samples: list[dict[str, object]] = field(default_factory=list)
    per_site: dict[str, float] = field(default_factory=dict)


def _find_split_clusters(ctx: RuleContext) -> list[Finding]:
    """One finding per chip set split across facilities above the threshold."""
    rule = ctx.settings(SplitClusterParams)
    if rule is None:
        return []
    snapshot, policy = ctx.snapshot, ctx.policy
    threshold = rule.params.site_compute_threshold_ops_per_s
    chips = snapshot.chips
    seen: dict[tuple[str, ...], _Seen] = {}
    for t in ctx.traffic:
        # Only components spanning more than one facility key can be split.
        for members in t.mixed_components():
            per_site: dict[int, float] = defaultdict(float)
            for m in members:
                chip = chips.get(m)
                if chip is not None and chip.facility_id is not None:
                    per_site[chip.facility_id] += chip.peak_ops
            total = sum(per_site[k] for k in sorted(per_site))
            if len(per_site) < 2 or total <= threshold or max(per_site.values()) > threshold:
                continue
            entry = seen.setdefault(members, _Seen())
            entry.windows.append(t.window)
            by_chip = t.reports_of()
            entry.evidence.update(
                r.log_index for m in members for r in by_chip.get(m, ()) if r.log_index is not None
            )
            if not entry.per_site:
                entry.per_site = {str(k): per_site[k] for k in sorted(per_site)}
    findings: list[Finding] = []
    for members, entry in sorted(seen.items()):
        per_site_ops = entry.per_site
        total = sum(per_site_ops.values())
        subject = "split-" + hashlib.sha256("\n".join(members).encode()).hexdigest()[:16]
        start, end = entry.windows[0][0], entry.windows[-1][1]
        countries = sorted({c.country for m in members if (c := chips.get(m)) and c.country})
        findings.append(
            make_finding(
                rule,
                policy,
                kind="split_cluster",
                subject_type="cluster",
                subject_id=subject,
                facility_id=None,
                country=countries[0] if len(countries) == 1 else None,
                window_start=start,
                window_end=end,
                summary=(
                    f"{len(members)} chips ({total / H100_PEAK_OPS:.0f} H100-equivalent) at "
                    f"{len(per_site_ops)} facilities work as one cluster: together above "
                    f"{threshold:.3g} OP/s, each site below it."
                ),
                details={
                    "chip_ids": list(members),
                    "chip_count": len(members),
                    "peak_ops_by_facility": per_site_ops,
                    "total_peak_ops": total,
                    "countries": countries,
                    "windows_observed": len(entry.windows),
                    "site_compute_threshold_ops_per_s": threshold,
                },
                evidence=entry.evidence,
            )
        )
    return findings


def _find_one_sided_links(ctx: RuleContext) -> list[Finding]:
    """One finding per chip pair whose two ends disagree, merged over windows."""
    rule = ctx.settings(OneSidedLinkParams)
    if rule is None:
        return []
    snapshot, policy = ctx.snapshot, ctx.policy
    seen: dict[tuple[str, str], _Seen] = {}
    for t in ctx.traffic:
        if not t.one_sided:
            continue
        by_chip = t.reports_of()
        for a, b, v, back in t.one_sided:
            entry = seen.setdefault((a, b), _Seen())
            entry.windows.append(t.window)
            for chip_id in (a, b):
                entry.evidence.update(
                    r.log_index for r in by_chip.get(chip_id, ()) if r.log_index is not None
                )
            if len(entry.samples) < 5:
                entry.samples.append(
                    {
                        "window_start": rfc3339(t.window[0]),
                        "claimant_gbps": round(v * 8 / t.seconds / 1e9, 3),
                        "peer_gbps": None if back is None else round(back * 8 / t.seconds / 1e9, 3),
                    }
                )
    findings: list[Finding] = []
    for (a, b), entry in sorted(seen.items()):
        peer_silent = all(s["peer_gbps"] is None for s in entry.samples)
        registered = b in snapshot.chips
        chip = snapshot.chips.get(a)
        start, end = entry.windows[0][0], entry.windows[-1][1]
        what = (
            "is not a registered chip"
            if not registered
            else "never mentions it"
            if peer_silent
            else "reports a different amount"
        )
        findings.append(
            make_finding(
                rule,
                policy,
                kind="one_sided_link",
                subject_type="link",
                subject_id=f"{a}|{b}",
                facility_id=None if chip is None else chip.facility_id,
                country=None if chip is None else chip.country,
                window_start=start,
                window_end=end,
                summary=(
                    f"Chip {a} claims traffic with {b}, which {what}, in "
                    f"{len(entry.windows)} window(s) from {rfc3339(start)}."
                ),
                details={
                    "claimant": a,
                    "peer": b,
                    "peer_registered": registered,
                    "windows_observed": len(entry.windows),
                    "samples": entry.samples,
                    "min_bits_per_s": rule.params.min_bits_per_s,
                    "mismatch_fraction": rule.params.mismatch_fraction,
                },
                evidence=entry.evidence,
            )
        )
    return findings


def _find_idle_with_traffic(ctx: RuleContext) -> list[Finding]:
    """One finding per chip claiming idle while its peers report more traffic with it than it
    could carry in the time it claims to have been busy
    (:meth:`~verifier.params.UnderreportingParams.carried_bits_per_s`)."""
    rule = ctx.settings(UnderreportingParams)
    if rule is None:
        return []
    snapshot, policy, params = ctx.snapshot, ctx.policy, rule.params
    floor = params.peer_traffic_bits_per_s
    chips = snapshot.chips
    seen: dict[str, _Seen] = {}
    for t in ctx.traffic:
        candidates = [(c, b) for c, b in t.idle_peer_bytes.items() if b * 8 / t.seconds > floor]
        if not candidates:
            continue
        by_chip = t.reports_of()
        hot = []
        for chip_id, total in candidates:
            chip = chips.get(chip_id)
            # A chip that reported the window twice is judged on its larger claim.
            claimed = max(r.utilization for r in by_chip[chip_id])
            bound = params.carried_bits_per_s(None if chip is None else chip.model, claimed)
            if total * 8 / t.seconds > bound:
                hot.append((chip_id, total, bound))
        for chip_id, total, bound in sorted(hot):
            entry = seen.setdefault(chip_id, _Seen())
            entry.windows.append(t.window)
            peers = sorted(t.idle_peers.get(chip_id, ()))
            for c in (chip_id, *peers):
                entry.evidence.update(
                    r.log_index for r in by_chip.get(c, ()) if r.log_index is not None
                )
            if len(entry.samples) < 5:
                own = by_chip[chip_id][0]
                entry.samples.append(
                    {
                        "window_start": rfc3339(t.window[0]),
                        "claimed_utilization": own.utilization,
                        "peer_gbps": round(total * 8 / t.seconds / 1e9, 3),
                        "carried_gbps_max": round(bound / 1e9, 3),
                        "peers": peers[:16],
                    }
                )
    findings: list[Finding] = []
    for chip_id, entry in sorted(seen.items()):
        chip = snapshot.chips.get(chip_id)
        start, end = entry.windows[0][0], entry.windows[-1][1]
        findings.append(
            make_finding(
                rule,
                policy,
                kind="underreporting",
                subject_type="chip",
                subject_id=chip_id,
                facility_id=None if chip is None else chip.facility_id,
                country=None if chip is None else chip.country,
                window_start=start,
                window_end=end,
                summary=(
                    f"Chip {chip_id} claims to be idle while its peers report "
                    f"{entry.samples[0]['peer_gbps']} Gbit/s with it, more than the "
                    f"{entry.samples[0]['carried_gbps_max']} Gbit/s its links carry in the "
                    f"time it claims to be busy, in {len(entry.windows)} window(s) from "
                    f"{rfc3339(start)}."
                ),
                details={
                    "chip_id": chip_id,
                    "channel": "peers",
                    "windows_observed": len(entry.windows),
                    "samples": entry.samples,
                    "idle_utilization": params.idle_utilization,
                    "peer_traffic_bits_per_s": floor,
                    "busy_time_floor": params.busy_time_floor,
                },
                evidence=entry.evidence,
            )
        )
    return findings


SPLIT_CLUSTER = Rule(rule_ids=(SPLIT_RULE_ID,), kinds=("split_cluster",), find=_find_split_clusters)
ONE_SIDED_LINK = Rule(
    rule_ids=(ONE_SIDED_RULE_ID,), kinds=("one_sided_link",), find=_find_one_sided_links
)
UNDERREPORTING_PEERS = Rule(
    rule_ids=(UNDERREPORTING_RULE_ID,), kinds=("underreporting",), find=_find_idle_with_traffic
)
"""The peer side of ``chip.underreporting`` (the meter side is :data:`verifier.power.POWER`)."""
