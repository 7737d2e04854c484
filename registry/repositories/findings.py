"""Stored verifier findings."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from registry.db.models import Facility, Finding, FindingTransition

__all__ = ["FindingRepository", "FindingTransitionRepository"]


class FindingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_fingerprints(self, fingerprints: list[str]) -> dict[str, Finding]:
        if not fingerprints:
            return {}
        rows = self.session.scalars(select(Finding).where(Finding.fingerprint.in_(fingerprints)))
        return {f.fingerprint: f for f in rows}

    def add_all(self, findings: list[Finding]) -> None:
        self.session.add_all(findings)
        self.session.flush()

    def get(self, finding_id: int) -> Finding | None:
        return self.session.get(Finding, finding_id)

    def search(
        self,
        *,
        facility_id: int | None = None,
        country: str | None = None,
        kind: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        operator_id: int | None = None,
        subject_id: str | None = None,
        about_chip: str | None = None,
        since: datetime | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[Finding]:
        stmt = select(Finding).order_by(Finding.id)
        if subject_id is not None:
            stmt = stmt.where(Finding.subject_id == subject_id)
        if about_chip is not None:
            # The chip is the subject, or named in the details (a cluster's members, say).
            stmt = stmt.where(
                or_(
                    Finding.subject_id == about_chip,
                    Finding.details_json.contains(json.dumps(about_chip), autoescape=True),
                )
            )
        if since is not None:
            stmt = stmt.where(Finding.created_at >= since)
        if facility_id is not None:
            stmt = stmt.where(Finding.facility_id == facility_id)
        if country is not None:
            stmt = stmt.where(Finding.country == country)
        if kind is not None:
            stmt = stmt.where(Finding.kind == kind)
        if severity is not None:
            stmt = stmt.where(Finding.severity == severity)
        if status is not None:
            stmt = stmt.where(Finding.status == status)
        if operator_id is not None:
            stmt = stmt.join(Facility, Facility.id == Finding.facility_id).where(
                Facility.operator_id == operator_id
            )
        return list(self.session.scalars(stmt.limit(limit).offset(offset)))


class FindingTransitionRepository:
    """The audit trail of findings' lifecycles."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock(self, finding_id: int) -> Finding | None:
        """The finding, row-locked for a status change (a no-op lock on SQLite)."""
        return self.session.scalar(
            select(Finding).where(Finding.id == finding_id).with_for_update()
        )

    def add(self, transition: FindingTransition) -> None:
        self.session.add(transition)
        self.session.flush()

    def for_finding(self, finding_id: int) -> list[FindingTransition]:
        return list(
            self.session.scalars(
                select(FindingTransition)
                .where(FindingTransition.finding_id == finding_id)
                .order_by(FindingTransition.id)
            )
        )
