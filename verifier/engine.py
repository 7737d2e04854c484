"""Run every enabled rule of a policy over a snapshot, in one deterministic order."""

from __future__ import annotations

from datetime import UTC, datetime

from verifier.clusters import find_undeclared_clusters
from verifier.errors import FactError
from verifier.facts import Snapshot
from verifier.findings import Finding
from verifier.policy import Policy
from verifier.silence import find_silent_chips

__all__ = ["run"]

_EPOCH_MIN = datetime.min.replace(tzinfo=UTC)


def run(snapshot: Snapshot, policy: Policy, as_of: datetime) -> list[Finding]:
    """Return the findings of all enabled rules, sorted by kind, subject id, then window start.

    The output depends only on the arguments: the same snapshot (in any order), policy and
    ``as_of`` always give the same list.
    """
    if as_of.utcoffset() is None:
        raise FactError(f"as_of must be timezone-aware, got naive {as_of.isoformat()}")
    findings: list[Finding] = []
    if policy.cluster.enabled:
        findings.extend(find_undeclared_clusters(snapshot, policy))
    if policy.silence.enabled:
        findings.extend(find_silent_chips(snapshot, policy, as_of))
    findings.sort(
        key=lambda f: (
            f.kind,
            f.subject_id,
            _EPOCH_MIN if f.window_start is None else f.window_start,
            f.fingerprint,
        )
    )
    return findings
