"""The end of a chip's service: decommission (it stops reporting for good) and revocation (its
key is no longer trusted), each with a reason, logged as a ``chip_status`` record.

Who may do what (docs/PROTOCOL.md 6.1): an admin does both; the operator holding the chip
decommissions it (it retires its own hardware); the chip's vendor revokes it (it vouched for the
key). Both take effect at the registry's receipt time, never a stated earlier one: a backdated
decommission would hide a silence that had already begun. Both are final; a decommissioned chip
may still be revoked (its key leaked later), a revoked chip is not decommissioned after.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from attestation.records import ChipStatusRecord
from registry.auth import Principal, Role
from registry.db.models import Chip
from registry.errors import Conflict, Forbidden, NotFound
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.services.log import LogAppender

__all__ = ["DECOMMISSIONED", "REVOKED", "ChipStatusService", "refuse_retired"]

DECOMMISSIONED = "decommissioned"
REVOKED = "revoked"


def refuse_retired(chip: Chip) -> None:
    """409 for a chip that is out of service: nothing new may be declared about it."""
    if chip.revoked_at is not None:
        raise Conflict(f"chip {chip.chip_id!r} was revoked", code="chip_revoked")
    if chip.decommissioned_at is not None:
        raise Conflict(f"chip {chip.chip_id!r} was decommissioned", code="chip_decommissioned")


class ChipStatusService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.log = LogAppender(session)
        self.clock = clock

    def _chip(self, chip_id: str) -> Chip:
        # The log's append lock first: a concurrent decommission, revocation or ingest commit
        # of this chip is serialised with this one, and the state read below is the latest.
        self.log.lock()
        chip = self.chips.get(chip_id)
        if chip is None:
            raise NotFound(f"chip {chip_id!r} is not enrolled", code="unknown_chip")
        return chip

    def decommission(self, caller: Principal, chip_id: str, reason: str) -> Chip:
        """Admin, or the operator whose facility holds the chip now."""
        caller.require(Role.ADMIN, Role.OPERATOR)  # the role before anything is looked up
        chip = self._chip(chip_id)
        operator_id: int | None = None
        if caller.role is not Role.ADMIN:
            current = self.facilities.current_installation(chip_id)
            if current is None or current.facility.operator_id != caller.operator_id:
                raise Forbidden(
                    f"chip {chip_id!r} is not installed at one of your facilities",
                    code="not_your_chip",
                )
            operator_id = caller.operator_id
        refuse_retired(chip)
        now = self.clock()
        chip.decommissioned_at, chip.decommission_reason = now, reason
        chip.decommission_log_index = self._log(
            caller, chip, DECOMMISSIONED, reason, now=now, operator_id=operator_id
        )
        return chip

    def revoke(self, caller: Principal, chip_id: str, reason: str) -> Chip:
        """Admin, or the chip's vendor."""
        caller.require(Role.ADMIN, Role.VENDOR)
        chip = self._chip(chip_id)
        caller.require_vendor(chip.vendor_id)
        if chip.revoked_at is not None:
            raise Conflict(f"chip {chip_id!r} was revoked", code="chip_revoked")
        now = self.clock()
        chip.revoked_at, chip.revocation_reason = now, reason
        chip.revocation_log_index = self._log(
            caller, chip, REVOKED, reason, now=now, operator_id=None
        )
        return chip

    def _log(
        self,
        caller: Principal,
        chip: Chip,
        status: str,
        reason: str,
        *,
        now: datetime,
        operator_id: int | None,
    ) -> int:
        return self.log.append_record(
            ChipStatusRecord(
                chip_id=chip.chip_id,
                status=status,
                reason=reason,
                effective_at=now,
                declared_by=caller.name,
                declared_role=caller.role.value,
                operator_id=operator_id,
            ),
            now,
        )
