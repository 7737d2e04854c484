"""chipreg verifier: pure detection algorithms over usage reports and declarations.

The registry loads facts from its database into a :class:`~verifier.facts.Snapshot`, calls
:func:`~verifier.engine.run` with a :class:`~verifier.policy.Policy` and an explicit ``as_of``
instant, and stores the returned :class:`~verifier.findings.Finding` values. A treaty partner's
audit tool re-derives the same findings from the log alone, so everything here is deterministic:
no wall clock, no randomness, no I/O beyond reading the built-in policy files.
"""

from __future__ import annotations

from verifier.clusters import find_undeclared_clusters
from verifier.engine import run
from verifier.errors import FactError, PolicyError, VerifierError
from verifier.facts import (
    ChipFact,
    ClusterNotificationFact,
    DeclaredClusterFact,
    FacilityFact,
    HostPowerFact,
    InstallationFact,
    LandmarkFact,
    LinkFact,
    MeterFact,
    MeterReadingFact,
    ReportFact,
    RttMeasurementFact,
    Snapshot,
    SubmissionFact,
)
from verifier.findings import Finding, Severity, fingerprint
from verifier.policy import (
    ClusterRule,
    Policy,
    SilenceRule,
    builtin_policy_names,
    load_builtin_policy,
    parse_policy,
)
from verifier.silence import find_silent_chips

__all__ = [
    "ChipFact",
    "ClusterNotificationFact",
    "ClusterRule",
    "DeclaredClusterFact",
    "FacilityFact",
    "FactError",
    "Finding",
    "HostPowerFact",
    "InstallationFact",
    "LandmarkFact",
    "LinkFact",
    "MeterFact",
    "MeterReadingFact",
    "Policy",
    "PolicyError",
    "ReportFact",
    "RttMeasurementFact",
    "Severity",
    "SilenceRule",
    "Snapshot",
    "SubmissionFact",
    "VerifierError",
    "builtin_policy_names",
    "find_silent_chips",
    "find_undeclared_clusters",
    "fingerprint",
    "load_builtin_policy",
    "parse_policy",
    "run",
]
