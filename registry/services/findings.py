"""The findings lifecycle: open -> acknowledged -> resolved (with a note), with an audit trail.

Each transition is checked against the caller's role and recorded in ``finding_transitions``
(who, when, from, to, note) in the same transaction that changes the status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from attestation.logentries import timestamp
from registry.auth import Principal, Role
from registry.db.models import Finding, FindingTransition
from registry.errors import Conflict, Forbidden, InvalidRequest, NotFound
from registry.repositories.facilities import FacilityRepository
from registry.repositories.findings import FindingTransitionRepository

__all__ = ["FindingLifecycle", "Status", "finding_document"]


class Status:
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# (from, to) -> roles allowed to make that move. Operators may acknowledge findings about their
# own facilities (saying "we are looking"), never close them: only inspectors and admins resolve.
_ALLOWED: dict[tuple[str, str], frozenset[Role]] = {
    (Status.OPEN, Status.ACKNOWLEDGED): frozenset({Role.ADMIN, Role.INSPECTOR, Role.OPERATOR}),
    (Status.OPEN, Status.RESOLVED): frozenset({Role.ADMIN, Role.INSPECTOR}),
    (Status.ACKNOWLEDGED, Status.RESOLVED): frozenset({Role.ADMIN, Role.INSPECTOR}),
    (Status.ACKNOWLEDGED, Status.OPEN): frozenset({Role.ADMIN, Role.INSPECTOR}),
    (Status.RESOLVED, Status.OPEN): frozenset({Role.ADMIN, Role.INSPECTOR}),
}
_TRANSITIONERS = frozenset(role for roles in _ALLOWED.values() for role in roles)
_READERS = (Role.ADMIN, Role.INSPECTOR, Role.PARTNER, Role.OPERATOR)


def _iso(dt: datetime | None) -> str | None:
    # The protocol's one way to write a time (as in the log), so a finding's times read the
    # same in the API, the webhooks, the exports and the verifier_run record.
    return None if dt is None else timestamp(dt)


def finding_document(f: Finding) -> dict[str, Any]:
    """The public JSON form of a stored finding (as in ``GET /v1/findings``)."""
    return {
        "id": f.id,
        "fingerprint": f.fingerprint,
        "rule_id": f.rule_id,
        "rule_version": f.rule_version,
        "policy_id": f.policy_id,
        "policy_version": f.policy_version,
        "kind": f.kind,
        "severity": f.severity,
        "status": f.status,
        "subject_type": f.subject_type,
        "subject_id": f.subject_id,
        "facility_id": f.facility_id,
        "country": f.country,
        "window_start": _iso(f.window_start),
        "window_end": _iso(f.window_end),
        "summary": f.summary,
        "details": json.loads(f.details_json),
        "evidence": json.loads(f.evidence_json),
        "citation": f.citation,
        "created_at": _iso(f.created_at),
    }


class FindingLifecycle:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.repo = FindingTransitionRepository(session)
        self.facilities = FacilityRepository(session)
        self.clock = clock

    def _check_operator(self, caller: Principal, finding: Finding) -> None:
        if caller.role is not Role.OPERATOR:
            return
        facility = self.facilities.get(finding.facility_id) if finding.facility_id else None
        if facility is None or facility.operator_id != caller.operator_id:
            raise Forbidden(
                f"finding {finding.id} is not about one of your facilities",
                code="not_your_operator",
            )

    def transition(
        self, caller: Principal, finding_id: int, *, to: str, note: str
    ) -> tuple[Finding, FindingTransition]:
        # Authorisation before anything the caller may not learn: a token that may not move
        # this finding hears 403, never whether it exists (404) or its status (409).
        caller.require(*_TRANSITIONERS)
        finding = self.repo.lock(finding_id)
        if finding is None:
            raise NotFound(f"no finding {finding_id}", code="unknown_finding")
        self._check_operator(caller, finding)
        roles = _ALLOWED.get((finding.status, to))
        if roles is None:
            raise Conflict(
                f"a finding cannot go from {finding.status!r} to {to!r}",
                code="invalid_transition",
            )
        caller.require(*roles)
        if to == Status.RESOLVED and not note.strip():
            raise InvalidRequest("resolving a finding needs a note", code="note_required")
        record = FindingTransition(
            finding_id=finding.id,
            from_status=finding.status,
            to_status=to,
            note=note,
            actor_token_id=caller.token_id,
            actor_name=caller.name,
            actor_role=caller.role.value,
            at=self.clock(),
        )
        finding.status = to
        self.repo.add(record)
        return finding, record

    def history(self, caller: Principal, finding_id: int) -> list[FindingTransition]:
        caller.require(*_READERS)
        finding = self.repo.session.get(Finding, finding_id)
        if finding is None:
            raise NotFound(f"no finding {finding_id}", code="unknown_finding")
        self._check_operator(caller, finding)
        return self.repo.for_finding(finding_id)
