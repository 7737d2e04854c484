"""Run every enabled rule of a policy over a snapshot, in one deterministic order."""

from __future__ import annotations

from datetime import UTC, datetime

from verifier._index import SnapshotIndex
from verifier._traffic import analyse_window
from verifier.clusters import find_undeclared_clusters
from verifier.compute import find_above_peak, find_budget_findings
from verifier.errors import FactError
from verifier.facts import Snapshot
from verifier.findings import Finding
from verifier.gpu import find_gpu_attestation_findings
from verifier.identity import find_clones, find_replays
from verifier.links import (
    ONE_SIDED_RULE_ID,
    SPLIT_RULE_ID,
    UNDERREPORTING_RULE_ID,
    find_idle_with_traffic,
    find_one_sided_links,
    find_split_clusters,
)
from verifier.location import (
    find_forbidden_countries,
    find_rtt_mismatches,
    find_wrong_facility_reports,
)
from verifier.policy import Policy
from verifier.power import find_power_anomalies
from verifier.silence import find_silent_chips, find_unaccounted_chips

__all__ = ["run"]

_EPOCH_MIN = datetime.min.replace(tzinfo=UTC)


def run(snapshot: Snapshot, policy: Policy, as_of: datetime) -> list[Finding]:
    """Return the findings of all enabled rules, sorted by kind, subject id, then window start.

    The output depends only on the arguments: the same snapshot (in any order), policy and
    ``as_of`` always give the same list. The interconnect claims of each window are read once
    and shared by the four link rules.
    """
    if as_of.utcoffset() is None:
        raise FactError(f"as_of must be timezone-aware, got naive {as_of.isoformat()}")
    split = policy.rule(SPLIT_RULE_ID)
    sided = policy.rule(ONE_SIDED_RULE_ID)
    under = policy.rule(UNDERREPORTING_RULE_ID)
    link_bits = None
    if policy.cluster.enabled:
        link_bits = policy.cluster.link_threshold_bits_per_s
    if split is not None:
        split_bits = split.number("link_threshold_bits_per_s")
        link_bits = split_bits if link_bits is None else min(link_bits, split_bits)
    index = SnapshotIndex(snapshot)
    traffic = []
    if link_bits is not None or sided is not None or under is not None:
        traffic = [
            analyse_window(
                window,
                reports,
                snapshot.chips,
                link_bits_per_s=link_bits,
                site_link_bits_per_s=(
                    None if split is None else split.number("inter_site_link_threshold_bits_per_s")
                ),
                one_sided=(
                    None
                    if sided is None
                    else (sided.number("min_bits_per_s"), sided.number("mismatch_fraction"))
                ),
                idle=None if under is None else (under.number("idle_utilization"),),
            )
            for window, reports in index.by_window().items()
        ]
    findings: list[Finding] = []
    if policy.cluster.enabled:
        findings.extend(find_undeclared_clusters(snapshot, policy, traffic))
    if policy.silence.enabled:
        findings.extend(find_silent_chips(snapshot, policy, as_of, index=index))
    findings.extend(find_unaccounted_chips(snapshot, policy, as_of, index=index))
    findings.extend(find_split_clusters(snapshot, policy, traffic))
    findings.extend(find_one_sided_links(snapshot, policy, traffic))
    findings.extend(find_idle_with_traffic(snapshot, policy, traffic))
    findings.extend(find_rtt_mismatches(snapshot, policy, index=index))
    findings.extend(find_wrong_facility_reports(snapshot, policy, index=index))
    findings.extend(find_forbidden_countries(snapshot, policy, index=index))
    findings.extend(find_clones(snapshot, policy, index=index))
    findings.extend(find_replays(snapshot, policy))
    ghosts, idle_by_meter = find_power_anomalies(snapshot, policy, index=index)
    findings.extend(ghosts)
    findings.extend(idle_by_meter)
    findings.extend(find_above_peak(snapshot, policy, index=index))
    over, unnotified = find_budget_findings(snapshot, policy, index=index)
    findings.extend(over)
    findings.extend(unnotified)
    findings.extend(find_gpu_attestation_findings(snapshot, policy, as_of))
    findings.sort(
        key=lambda f: (
            f.kind,
            f.subject_id,
            _EPOCH_MIN if f.window_start is None else f.window_start,
            f.fingerprint,
        )
    )
    return findings
