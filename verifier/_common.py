"""Helpers shared by the rules: one finding constructor, window grouping, geometry."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from verifier.facts import ChipFact, InstallationFact, ReportFact, Snapshot
from verifier.findings import Finding, fingerprint
from verifier.policy import Policy, RuleSettings

__all__ = [
    "Window",
    "declared_facility",
    "great_circle_km",
    "installations_by_chip",
    "make_finding",
    "reports_by_window",
]

Window = tuple[datetime, datetime]
EARTH_RADIUS_KM = 6371.0088


def make_finding(
    rule: RuleSettings[Any],
    policy: Policy,
    *,
    kind: str,
    subject_type: str,
    subject_id: str,
    facility_id: int | None,
    country: str | None,
    window_start: datetime | None,
    window_end: datetime | None,
    summary: str,
    details: Mapping[str, object],
    evidence: Iterable[int | None],
) -> Finding:
    """A finding of ``rule``; evidence is deduplicated and sorted, ``None`` entries dropped."""
    return Finding(
        rule_id=rule.rule_id,
        rule_version=rule.version,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        kind=kind,
        severity=rule.severity,
        subject_type=subject_type,
        subject_id=subject_id,
        facility_id=facility_id,
        country=country,
        window_start=window_start,
        window_end=window_end,
        summary=summary,
        details=details,
        evidence=tuple(sorted({e for e in evidence if e is not None})),
        fingerprint=fingerprint(
            rule.rule_id, subject_type, subject_id, window_start, policy_id=policy.policy_id
        ),
        citation=rule.citation,
    )


def reports_by_window(reports: Iterable[ReportFact]) -> dict[Window, list[ReportFact]]:
    """Reports grouped by their exact ``(window_start, window_end)``."""
    grouped: dict[Window, list[ReportFact]] = defaultdict(list)
    for report in reports:
        grouped[(report.window_start, report.window_end)].append(report)
    return grouped


def installations_by_chip(snapshot: Snapshot) -> dict[str, list[InstallationFact]]:
    """Each chip's declared installations, in start order."""
    grouped: dict[str, list[InstallationFact]] = defaultdict(list)
    for inst in snapshot.installations:
        grouped[inst.chip_id].append(inst)
    for stays in grouped.values():
        stays.sort(key=lambda i: (i.start, i.facility_id))
    return grouped


def declared_facility(
    chip: ChipFact | None, stays: Sequence[InstallationFact] | None, instant: datetime
) -> int | None:
    """Where the chip was declared at ``instant``: from its installation history when the
    snapshot has one, else its current installation if that had begun by then."""
    if stays:
        found = None
        for stay in stays:
            if stay.covers(instant):
                found = stay.facility_id
        return found
    if chip is None or chip.installed_at is None or chip.installed_at > instant:
        return None
    return chip.facility_id


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a spherical Earth (mean radius), in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
