"""Run every rule over one snapshot, in one fixed order, and sort the findings.

The engine is the list :data:`RULES`: each entry is a :class:`~verifier.rules.Rule` (one
signature, ``find(ctx)``), all run over one :class:`~verifier.rules.RuleContext` so that the
snapshot index and the per-window traffic analysis are built at most once. A rule the policy
lacks or disables finds nothing. The order below only fixes how ties among equal sort keys
would fall (there are none: the sort key ends with the fingerprint); it is kept as it was when
the rules were wired by hand. Adding a rule: docs/VERIFIER.md, "Adding a rule".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from verifier.clusters import UNDECLARED_CLUSTER
from verifier.compute import ABOVE_PEAK, CLUSTER_COMPUTE
from verifier.facts import Snapshot
from verifier.findings import Finding
from verifier.gpu import GPU_ATTESTATION
from verifier.identity import CLONE, REPLAY
from verifier.links import ONE_SIDED_LINK, SPLIT_CLUSTER, UNDERREPORTING_PEERS
from verifier.location import FORBIDDEN_COUNTRY, RTT_MISMATCH, WRONG_FACILITY
from verifier.policy import Policy
from verifier.power import POWER
from verifier.rules import Rule, RuleContext
from verifier.silence import SILENT, UNACCOUNTED

__all__ = ["RULES", "run"]

RULES: tuple[Rule, ...] = (
    UNDECLARED_CLUSTER,  # cluster.undeclared                  clusters.py
    SILENT,  # chip.silent                                     silence.py
    UNACCOUNTED,  # chip.unaccounted                           silence.py
    SPLIT_CLUSTER,  # cluster.split                            links.py
    ONE_SIDED_LINK,  # link.one_sided                          links.py
    UNDERREPORTING_PEERS,  # chip.underreporting (peers)       links.py
    RTT_MISMATCH,  # location.rtt_mismatch                     location.py
    WRONG_FACILITY,  # report.wrong_facility                   location.py
    FORBIDDEN_COUNTRY,  # chip.forbidden_country               location.py
    CLONE,  # identity.clone                                   identity.py
    REPLAY,  # report.replay                                   identity.py
    POWER,  # power.ghost_chips, chip.underreporting (meter)   power.py
    ABOVE_PEAK,  # chip.above_peak                             compute.py
    CLUSTER_COMPUTE,  # cluster.budget_exceeded, cluster.threshold_unnotified  compute.py
    GPU_ATTESTATION,  # gpu.device_changed, gpu.attestation_lapsed  gpu.py
)
"""Every rule, in the order the engine runs them."""

_EPOCH_MIN = datetime.min.replace(tzinfo=UTC)


def run(
    snapshot: Snapshot, policy: Policy, as_of: datetime, *, rules: Sequence[Rule] = RULES
) -> list[Finding]:
    """Return the findings of all enabled rules, sorted by kind, subject id, window start,
    then fingerprint.

    The output depends only on the arguments: the same snapshot (in any order), policy and
    ``as_of`` always give the same list. ``rules`` is :data:`RULES` but for tests.

    Raises:
        FactError: ``as_of`` is naive.
    """
    ctx = RuleContext(snapshot, policy, as_of)
    findings: list[Finding] = []
    for rule in rules:
        findings.extend(rule.find(ctx))
    findings.sort(
        key=lambda f: (
            f.kind,
            f.subject_id,
            _EPOCH_MIN if f.window_start is None else f.window_start,
            f.fingerprint,
        )
    )
    return findings
