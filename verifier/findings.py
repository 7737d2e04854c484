"""The verifier's output: typed, self-describing findings with stable fingerprints.

A finding names the rule (and its version) that fired, the policy it came from, its subject,
the evidence (log indexes of the reports behind it) and the citation of the threshold it
applied. The fingerprint identifies the *condition*, not the run, so storing findings by
fingerprint makes re-running the verifier idempotent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

__all__ = ["Finding", "Severity", "fingerprint", "rfc3339"]


class Severity(StrEnum):
    """How urgently an inspector should look at a finding."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


def rfc3339(value: datetime) -> str:
    """Format an aware datetime as an RFC 3339 UTC string with a ``Z`` suffix.

    Microseconds are kept only when present, so the text is canonical for a given instant.
    """
    utc = value.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint(
    rule_id: str,
    subject_type: str,
    subject_id: str,
    window_start: datetime | None,
    *,
    policy_id: str,
) -> str:
    """Return the hex SHA-256 of the canonical JSON identifying one detected condition.

    The window's *start* (when the condition was first observed) is part of the identity; its
    end is not, because it keeps growing while the condition persists: an undeclared cluster
    seen again in the next run, or a chip still silent, keeps its fingerprint. The policy *id*
    is part of it (a registry following two policies stores each one's judgement of the same
    condition; a finding under ``demo`` never stands for one under ``default``), its *version*
    is not (tightening a threshold does not re-open known findings).
    """
    canonical = json.dumps(
        {
            "policy_id": policy_id,
            "rule_id": rule_id,
            "subject_id": subject_id,
            "subject_type": subject_type,
            "window_start": None if window_start is None else rfc3339(window_start),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Finding:
    """One suspicious condition detected by one rule under one policy.

    ``details`` holds JSON-serialisable values only (datetimes as RFC 3339 ``Z`` strings);
    ``evidence`` is the sorted tuple of log indexes of the reports the rule relied on.
    """

    rule_id: str
    rule_version: int
    policy_id: str
    policy_version: str
    kind: str
    severity: Severity
    subject_type: str
    subject_id: str
    facility_id: int | None
    country: str | None
    window_start: datetime | None
    window_end: datetime | None
    summary: str
    details: Mapping[str, object]
    evidence: tuple[int, ...]
    fingerprint: str
    citation: str

    def to_dict(self) -> dict[str, object]:
        """Return the finding as a JSON-serialisable dict (datetimes as RFC 3339 strings)."""
        return {
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "kind": self.kind,
            "severity": self.severity.value,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "facility_id": self.facility_id,
            "country": self.country,
            "window_start": None if self.window_start is None else rfc3339(self.window_start),
            "window_end": None if self.window_end is None else rfc3339(self.window_end),
            "summary": self.summary,
            "details": dict(self.details),
            "evidence": list(self.evidence),
            "fingerprint": self.fingerprint,
            "citation": self.citation,
        }
