"""Read models for inspectors: chips with custody and reports, facilities, findings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from registry.auth import Principal, Role
from registry.db.models import Chip, Facility, Finding, Installation, Report
from registry.errors import Forbidden, NotFound
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.repositories.findings import FindingRepository
from registry.repositories.reports import ReportRepository

__all__ = ["ChipView", "QueryService"]

READ_ALL = (Role.ADMIN, Role.INSPECTOR, Role.PARTNER)


@dataclass(frozen=True)
class ChipView:
    chip: Chip
    current: Installation | None
    custody: list[Installation]
    latest_reports: list[Report]


class QueryService:
    def __init__(self, session: Session) -> None:
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.reports = ReportRepository(session)
        self.finding_repo = FindingRepository(session)

    def chip(self, caller: Principal, chip_id: str, *, reports: int = 10) -> ChipView:
        chip, current = self.readable_chip(caller, chip_id)
        return ChipView(
            chip=chip,
            current=current,
            custody=self.facilities.custody(chip_id),
            latest_reports=self.reports.latest_for_chip(chip_id, reports),
        )

    def readable_chip(self, caller: Principal, chip_id: str) -> tuple[Chip, Installation | None]:
        """The chip and its current installation, if the caller may read it."""
        caller.require(*READ_ALL, Role.VENDOR, Role.OPERATOR)  # before the lookup: 404 tells
        chip = self.chips.get(chip_id)
        if chip is None:
            raise NotFound(f"chip {chip_id!r} is not enrolled", code="unknown_chip")
        current = self.facilities.current_installation(chip_id)
        allowed = (
            caller.role in READ_ALL
            or (caller.role is Role.VENDOR and caller.vendor_id == chip.vendor_id)
            or (
                caller.role is Role.OPERATOR
                and current is not None
                and current.facility.operator_id == caller.operator_id
            )
        )
        if not allowed:
            raise Forbidden(f"you may not read chip {chip_id!r}", code="not_your_chip")
        return chip, current

    def readable_facility(self, caller: Principal, facility_id: int) -> Facility:
        """The facility, if the caller may read it (everyone who reads all, or its operator)."""
        caller.require(*READ_ALL, Role.OPERATOR)  # before the lookup: 404 tells
        facility = self.facilities.get(facility_id)
        if facility is None:
            raise NotFound(f"no facility {facility_id}", code="unknown_facility")
        if caller.role not in READ_ALL:
            caller.require_operator(facility.operator_id)
        return facility

    def list_facilities(self, caller: Principal, *, country: str | None) -> list[Facility]:
        if caller.role in READ_ALL:
            return self.facilities.search(country=country)
        caller.require(Role.OPERATOR)
        return self.facilities.search(country=country, operator_id=caller.operator_id)

    def findings(self, caller: Principal, **filters: Any) -> list[Finding]:
        if caller.role not in READ_ALL:
            caller.require(Role.OPERATOR)
            filters["operator_id"] = caller.operator_id
        return self.finding_repo.search(**filters)
