"""Silent-chip detection: continuity of knowledge lost for an installed chip.

A chip that is installed must keep reporting. Once the time since it was last heard from (its
latest report's window end, or, if it never reported, the start of its first declared
installation) exceeds the policy's grace period, it is flagged. Silence follows reports, never
declarations: declaring the chip's installation again (a move, or the same facility re-declared)
does not restart the clock, or re-declaring a dark chip every half hour would hide it forever.
The finding is keyed on that last-heard instant, so re-running the verifier while the chip stays
silent yields the same fingerprint; a chip that reports again and then falls silent again yields
a new one.

A chip that left service (decommissioned or revoked: ``ChipFact.retired_at``) is judged as of
that instant: a silence that had already passed the grace period then is still found (leaving
service does not hide it), none that would begin later.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from verifier.facts import ChipFact, ReportFact, Snapshot
from verifier.findings import Finding, fingerprint, rfc3339
from verifier.params import SilentParams, UnaccountedParams
from verifier.policy import SILENCE_RULE_ID, Policy, RuleSettings
from verifier.rules import Rule, RuleContext

__all__ = [
    "KIND",
    "SILENT",
    "UNACCOUNTED",
    "UNACCOUNTED_KIND",
    "UNACCOUNTED_RULE_ID",
    "find_silent_chips",
]

KIND = "chip_silent"
UNACCOUNTED_KIND = "chip_unaccounted"
UNACCOUNTED_RULE_ID = UnaccountedParams.rule_id


def _find_silent(ctx: RuleContext) -> list[Finding]:
    """Installed chips silent beyond ``chip.silent``'s grace period, sorted by chip id.

    ``as_of`` is the instant of evaluation, passed in (never read from the clock) so that an
    auditor re-deriving the findings gets the same answer. Reports in the snapshot dated after
    ``as_of`` still count as heard from: the snapshot is what is known.
    """
    rule = ctx.settings(SilentParams)
    if rule is None:
        return []
    return _silent(ctx, rule, kind=KIND, grace=timedelta(seconds=rule.params.grace_period_s))


def _find_unaccounted(ctx: RuleContext) -> list[Finding]:
    """Rule ``chip.unaccounted``: the same test with that rule's longer grace period (days,
    not hours): the chip's whereabouts are unknown."""
    rule = ctx.settings(UnaccountedParams)
    if rule is None:
        return []
    grace = timedelta(seconds=rule.params.grace_period_s)
    return _silent(ctx, rule, kind=UNACCOUNTED_KIND, grace=grace)


SILENT = Rule(rule_ids=(SILENCE_RULE_ID,), kinds=(KIND,), find=_find_silent)
UNACCOUNTED = Rule(
    rule_ids=(UNACCOUNTED_RULE_ID,), kinds=(UNACCOUNTED_KIND,), find=_find_unaccounted
)


def find_silent_chips(snapshot: Snapshot, policy: Policy, as_of: datetime) -> list[Finding]:
    """Rule ``chip.silent`` on its own: one finding per installed chip silent beyond the
    grace period, sorted by chip id."""
    return _find_silent(RuleContext(snapshot, policy, as_of))


def _silent(
    ctx: RuleContext, rule: RuleSettings[Any], *, kind: str, grace: timedelta
) -> list[Finding]:
    snapshot, policy, as_of, index = ctx.snapshot, ctx.policy, ctx.as_of, ctx.index
    cutoff = as_of - grace
    # Only chips with no report ending at or after the cutoff can be silent.
    stale = index.stale_chips(cutoff)
    if not stale:
        return []
    latest: dict[str, ReportFact] = {}
    for report in snapshot.reports:
        if report.chip_id in stale:
            current = latest.get(report.chip_id)
            if current is None or _recency(report) > _recency(current):
                latest[report.chip_id] = report
    findings: list[Finding] = []
    for chip_id in sorted(stale):
        chip = snapshot.chips[chip_id]
        installed_at = chip.installed_at
        if installed_at is None or installed_at > as_of:
            continue
        last = latest.get(chip_id)
        stays = index.stays_of(chip_id) or []
        first = min([installed_at, *(s.start for s in stays)])
        last_seen = first if last is None else last.window_end
        judged = as_of if chip.retired_at is None else min(as_of, chip.retired_at)
        if last_seen < judged - grace:
            findings.append(
                _finding(chip, last, last_seen, judged, policy, rule=rule, kind=kind, grace=grace)
            )
    return findings


def _recency(report: ReportFact) -> tuple[datetime, int, int]:
    # Ties between reports of the same window go to the higher sequence number, then log index,
    # so the choice of "last report" never depends on input order.
    return (report.window_end, report.seq, -1 if report.log_index is None else report.log_index)


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    return " ".join(parts)


def _finding(
    chip: ChipFact,
    last: ReportFact | None,
    last_seen: datetime,
    as_of: datetime,
    policy: Policy,
    *,
    rule: RuleSettings[Any],
    kind: str,
    grace: timedelta,
) -> Finding:
    silent_for = as_of - last_seen
    where = f"facility {chip.facility_id}" if chip.facility_id is not None else "no facility"
    if last is None:
        since = (
            f"has been installed since {rfc3339(last_seen)} (now at {where}) and has never reported"
        )
    else:
        since = f"at {where} has not reported since {rfc3339(last_seen)}"
    summary = (
        f"Chip {chip.chip_id} ({chip.model}) {since}: silent for {_duration(silent_for)}, "
        f"beyond the {_duration(grace)} grace period."
    )
    details: dict[str, object] = {
        "chip_id": chip.chip_id,
        "model": chip.model,
        "last_seen": rfc3339(last_seen),
        "last_report_window_end": None if last is None else rfc3339(last.window_end),
        "last_seq": None if last is None else last.seq,
        "installed_at": None if chip.installed_at is None else rfc3339(chip.installed_at),
        "as_of": rfc3339(as_of),
        "silent_for_seconds": int(silent_for.total_seconds()),
        "never_reported": last is None,
        "grace_period_seconds": int(grace.total_seconds()),
    }
    evidence = () if last is None or last.log_index is None else (last.log_index,)
    return Finding(
        rule_id=rule.rule_id,
        rule_version=rule.version,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        kind=kind,
        severity=rule.severity,
        subject_type="chip",
        subject_id=chip.chip_id,
        facility_id=chip.facility_id,
        country=chip.country,
        window_start=last_seen,
        window_end=as_of,
        summary=summary,
        details=details,
        evidence=evidence,
        fingerprint=fingerprint(
            rule.rule_id, "chip", chip.chip_id, last_seen, policy_id=policy.policy_id
        ),
        citation=rule.citation,
    )
