"""Cloned and replayed identities, from accepted reports and signed-but-rejected submissions.

* ``identity.clone``: one chip signs exactly one report per window and per sequence number.
  Two *different* signed reports (different digests) with the same ``seq``, or with
  overlapping windows, mean two signers hold the chip's key (or the chip was rewound).
* ``report.replay``: a byte-identical copy of an accepted report, received more than
  ``max_retry_delay_s`` after the original or from another source than the original: not an
  agent's retry after a lost acknowledgement, but an old report sent again.

A chip-signed report delivered through an operator that is not the chip's custodian (outcome
``forbidden``) is the chip key's word all the same: a byte-identical copy of an accepted report
is a replay (``other_source``); anything else was signed by a second holder of the key, a
clone (``outside_custody``), even when it conflicts with no accepted report.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from verifier._common import make_finding
from verifier._index import report_order
from verifier.facts import ReportFact, Snapshot, SubmissionFact
from verifier.findings import Finding, rfc3339
from verifier.params import CloneParams, ReplayParams
from verifier.rules import Rule, RuleContext

__all__ = ["CLONE", "REPLAY"]

CLONE_RULE_ID = CloneParams.rule_id
REPLAY_RULE_ID = ReplayParams.rule_id
FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class _Signed:
    seq: int
    digest: str
    start: datetime
    end: datetime
    facility_id: int | None
    source: str | None
    log_index: int | None
    accepted: bool


def _signed(r: ReportFact | SubmissionFact) -> _Signed:
    if isinstance(r, ReportFact):
        return _Signed(
            r.seq,
            r.digest or f"log:{r.log_index}:{r.seq}",
            r.window_start,
            r.window_end,
            r.facility_id,
            r.source,
            r.log_index,
            True,
        )
    return _Signed(
        r.seq,
        r.digest,
        r.window_start,
        r.window_end,
        r.facility_id,
        r.source,
        r.log_index,
        False,
    )


def _order(x: _Signed) -> tuple[object, ...]:
    """A total order on signed reports, so that ties never fall back to set order (which
    changes with the process's string hash seed)."""
    return (
        x.start,
        x.seq,
        x.digest,
        x.end,
        x.accepted,
        x.facility_id is None,
        x.facility_id or 0,
        x.source is None,
        x.source or "",
        x.log_index is None,
        x.log_index or 0,
    )


def _copies_of_accepted(snapshot: Snapshot) -> set[tuple[str, int, str]]:
    """``(chip, seq, digest)`` of forbidden submissions byte-identical to an accepted report."""
    wanted = {(s.chip_id, s.seq, s.digest) for s in snapshot.submissions if s.outcome == FORBIDDEN}
    if not wanted:
        return set()
    return {(r.chip_id, r.seq, r.digest or "") for r in snapshot.reports} & wanted


def _find_clones(ctx: RuleContext) -> list[Finding]:
    """One finding per chip with conflicting signed reports."""
    rule = ctx.settings(CloneParams)
    if rule is None:
        return []
    snapshot, policy = ctx.snapshot, ctx.policy
    min_conflicts = rule.params.min_conflicts
    copies = _copies_of_accepted(snapshot)
    foreign = [
        s
        for s in snapshot.submissions
        if s.outcome == FORBIDDEN and (s.chip_id, s.seq, s.digest) not in copies
    ]
    suspects = {s.chip_id for s in snapshot.submissions if s.outcome != "replayed_report"}
    per_chip: dict[str, list[_Signed]] = defaultdict(list)
    # Accepted reports alone conflict only when two of one chip share a window start (the
    # registry refuses windows out of order), so only such chips are looked at closely.
    by_start: dict[datetime, list[list[ReportFact]]] = defaultdict(list)
    for (start, _), group in ctx.index.by_window().items():
        by_start[start].append(group)
    for groups in by_start.values():
        ids = [r.chip_id for group in groups for r in group]
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            for chip_id in ids:
                if chip_id in seen:
                    suspects.add(chip_id)
                seen.add(chip_id)
    if suspects:
        for r in snapshot.reports:
            if r.chip_id in suspects:
                per_chip[r.chip_id].append(_signed(r))
    for s in snapshot.submissions:
        # Copies of accepted reports (replays, forwarded or not) are the replay rule's business.
        if s.outcome != "replayed_report" and (s.chip_id, s.seq, s.digest) not in copies:
            per_chip[s.chip_id].append(_signed(s))
    outside: dict[str, set[_Signed]] = defaultdict(set)
    for s in foreign:
        outside[s.chip_id].add(_signed(s))

    findings: list[Finding] = []
    for chip_id in sorted(per_chip):
        signed = sorted(set(per_chip[chip_id]), key=_order)
        conflicts: list[tuple[_Signed, _Signed, str]] = []
        by_seq: dict[int, _Signed] = {}
        for x in signed:
            other = by_seq.get(x.seq)
            if other is not None and other.digest != x.digest:
                conflicts.append((other, x, "same_seq"))
            by_seq.setdefault(x.seq, x)
        for i, x in enumerate(signed):
            for y in signed[i + 1 :]:
                if y.start >= x.end:
                    break
                if x.digest != y.digest and x.seq != y.seq:
                    conflicts.append((x, y, "overlapping_windows"))
        # Signed by the chip's key, delivered by a non-custodian, and no copy of its reports.
        conflicts.extend((x, x, "outside_custody") for x in sorted(outside[chip_id], key=_order))
        if len(conflicts) < min_conflicts:
            continue
        facilities = sorted(
            {f for a, b, _ in conflicts for f in (a.facility_id, b.facility_id) if f is not None}
        )
        sources = sorted(
            {s for a, b, _ in conflicts for s in (a.source, b.source) if s is not None}
        )
        first = min(min(a.start, b.start) for a, b, _ in conflicts)
        last = max(max(a.end, b.end) for a, b, _ in conflicts)
        chip = snapshot.chips.get(chip_id)
        findings.append(
            make_finding(
                rule,
                policy,
                kind="cloned_identity",
                subject_type="chip",
                subject_id=chip_id,
                facility_id=None if chip is None else chip.facility_id,
                country=None if chip is None else chip.country,
                window_start=first,
                window_end=last,
                summary=(
                    f"Chip {chip_id} signed {len(conflicts)} pair(s) of conflicting reports "
                    f"(same sequence number or overlapping windows, different content)"
                    + (f" claiming facilities {facilities}" if len(facilities) > 1 else "")
                    + ": its key is used by more than one signer."
                ),
                details={
                    "chip_id": chip_id,
                    "conflicts": [
                        {
                            "why": why,
                            "seqs": [a.seq, b.seq],
                            "digests": [a.digest, b.digest],
                            "windows": [rfc3339(a.start), rfc3339(b.start)],
                            "accepted": [a.accepted, b.accepted],
                        }
                        for a, b, why in conflicts[:20]
                    ],
                    "conflict_count": len(conflicts),
                    "claimed_facility_ids": facilities,
                    "sources": sources,
                },
                evidence=[x.log_index for a, b, _ in conflicts for x in (a, b)],
            )
        )
    return findings


def _find_replays(ctx: RuleContext) -> list[Finding]:
    """One finding per chip with replayed copies of its accepted reports."""
    rule = ctx.settings(ReplayParams)
    if rule is None:
        return []
    snapshot, policy = ctx.snapshot, ctx.policy
    forwarded = _copies_of_accepted(snapshot)
    copies = [
        s
        for s in snapshot.submissions
        if s.outcome == "replayed_report"
        or (s.outcome == FORBIDDEN and (s.chip_id, s.seq, s.digest) in forwarded)
    ]
    if not copies:
        return []
    max_delay = rule.params.max_retry_delay_s
    wanted = {(s.chip_id, s.seq) for s in copies}
    wanted_chips = {s.chip_id for s in copies}
    originals: dict[tuple[str, int], ReportFact] = {}
    for r in snapshot.reports:
        if r.chip_id in wanted_chips and (r.chip_id, r.seq) in wanted:
            known = originals.get((r.chip_id, r.seq))
            # Two accepted reports with one seq (a clone): the choice must not follow input order.
            if known is None or report_order(r) > report_order(known):
                originals[(r.chip_id, r.seq)] = r
    hits: dict[str, list[tuple[SubmissionFact, ReportFact | None, float | None, str]]] = (
        defaultdict(list)
    )
    for s in copies:
        original = originals.get((s.chip_id, s.seq))
        accepted_at = None
        if original is not None:
            # The receipt the logged evidence states, never the registry's own table: a partner
            # re-derives this delay from the log alone.
            accepted_at = s.original_received_at or original.window_end
        delay = None if accepted_at is None else (s.received_at - accepted_at).total_seconds()
        if delay is None:
            delay = (s.received_at - s.window_end).total_seconds()
        other_source = (
            original is not None
            and original.source is not None
            and s.source is not None
            and original.source != s.source
        )
        if delay > max_delay:
            hits[s.chip_id].append((s, original, delay, "late"))
        elif other_source or s.outcome == FORBIDDEN:
            hits[s.chip_id].append((s, original, delay, "other_source"))
    findings: list[Finding] = []
    for chip_id in sorted(hits):
        found = sorted(hits[chip_id], key=lambda h: (h[0].received_at, h[0].seq))
        chip = snapshot.chips.get(chip_id)
        first = found[0][0]
        findings.append(
            make_finding(
                rule,
                policy,
                kind="replayed_report",
                subject_type="chip",
                subject_id=chip_id,
                facility_id=None if chip is None else chip.facility_id,
                country=None if chip is None else chip.country,
                window_start=first.received_at,
                window_end=found[-1][0].received_at,
                summary=(
                    f"{len(found)} old report(s) of chip {chip_id} were sent again (first: seq "
                    f"{first.seq}, {int(found[0][2] or 0)} s after the original), beyond the "
                    f"{int(max_delay)} s an agent retry can explain or from another source."
                ),
                details={
                    "chip_id": chip_id,
                    "replays": [
                        {
                            "seq": s.seq,
                            "received_at": rfc3339(s.received_at),
                            "delay_s": None if d is None else round(d, 1),
                            "why": why,
                            "source": s.source,
                            "original_source": None if o is None else o.source,
                        }
                        for s, o, d, why in found[:20]
                    ],
                    "replay_count": len(found),
                    "max_retry_delay_s": max_delay,
                },
                evidence=[
                    x
                    for s, o, _, _ in found
                    for x in (s.log_index, None if o is None else o.log_index)
                ],
            )
        )
    return findings


CLONE = Rule(rule_ids=(CLONE_RULE_ID,), kinds=("cloned_identity",), find=_find_clones)
REPLAY = Rule(rule_ids=(REPLAY_RULE_ID,), kinds=("replayed_report",), find=_find_replays)
