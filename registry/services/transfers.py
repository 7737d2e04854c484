"""Custody transfers between operators (docs/PROTOCOL.md 6.2): one declaration signed by both
the giving and the receiving operator (``attestation.transfer``), verified here against each
one's registered key, applied as the chip's next installation and logged as received."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from attestation.dsse import Envelope
from attestation.errors import FormatError
from attestation.keys import PublicKey
from attestation.logentries import TRANSFER
from attestation.transfer import Transfer, open_transfer, verify_transfer
from registry.auth import Principal, Role
from registry.db.models import Facility, Installation
from registry.errors import Conflict, Forbidden, InvalidRequest, NotFound, reported_as
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.services.chipstatus import refuse_retired
from registry.services.log import LogAppender

__all__ = ["TransferService"]


_MAX_FACILITY_ID = 2**31 - 1


class TransferService:
    def __init__(
        self, session: Session, clock: Callable[[], datetime], *, max_clock_skew_s: int = 120
    ) -> None:
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.log = LogAppender(session)
        self.clock = clock
        self.skew = timedelta(seconds=max_clock_skew_s)

    def _facility(self, facility_id: int) -> Facility:
        facility = self.facilities.get(facility_id)
        if facility is None:
            raise NotFound(f"no facility {facility_id}", code="unknown_facility")
        return facility

    def transfer(self, caller: Principal, envelope: Envelope) -> Installation:
        """Apply a transfer signed by both operators; the caller is an admin or either party."""
        caller.require(Role.ADMIN, Role.OPERATOR)
        with reported_as("malformed_declaration"):
            claimed = open_transfer(envelope)
        for facility_id in (claimed.from_facility_id, claimed.to_facility_id):
            # The transfer format allows 64-bit ids; ids are INTEGER columns (32 bits on
            # PostgreSQL, where a larger one fails the query): bounded like every request id.
            if facility_id > _MAX_FACILITY_ID:
                raise InvalidRequest(
                    f"facility ids are at most {_MAX_FACILITY_ID}, got {facility_id}",
                    code="invalid_request",
                )
        # Serialised with other custody changes and ingest by the log's append lock.
        self.log.lock()
        giving = self._facility(claimed.from_facility_id)
        receiving = self._facility(claimed.to_facility_id)
        parties = (giving.operator_id, receiving.operator_id)
        if caller.role is not Role.ADMIN and caller.operator_id not in parties:
            raise Forbidden(
                "only the giving or the receiving operator (or an admin) posts a transfer",
                code="not_your_operator",
            )
        if giving.operator_id == receiving.operator_id:
            raise InvalidRequest(
                "both facilities belong to one operator: declare an installation instead",
                code="not_a_transfer",
            )
        transfer = self._verify(envelope, giving, receiving)
        chip = self.chips.get(transfer.chip_id)
        if chip is None:
            raise NotFound(f"chip {transfer.chip_id!r} is not enrolled", code="unknown_chip")
        if self.facilities.installation_at(
            transfer.chip_id, transfer.to_facility_id, transfer.transferred_at
        ):
            raise Conflict("this transfer was already applied", code="replayed_transfer")
        refuse_retired(chip)
        now = self.clock()
        if transfer.transferred_at > now + self.skew:
            raise InvalidRequest("transferred_at is in the future", code="transfer_in_future")
        current = self.facilities.current_installation(transfer.chip_id)
        if current is None or current.facility_id != giving.id:
            raise Conflict(
                f"chip {transfer.chip_id!r} is not installed at facility {giving.id}",
                code="chip_not_at_facility",
            )
        if transfer.transferred_at <= current.installed_at:
            raise InvalidRequest(
                "transferred_at must be after the current installation began",
                code="installation_out_of_order",
            )
        current.removed_at = transfer.transferred_at
        installation = Installation(
            chip_id=transfer.chip_id,
            facility_id=receiving.id,
            installed_at=transfer.transferred_at,
            declared_by_operator_id=receiving.operator_id,
            created_at=now,
        )
        installation.log_index = self.log.append(TRANSFER, [envelope.to_json()], now)
        self.facilities.add(installation)
        self.chips.note_installation(chip, transfer.transferred_at)
        return installation

    def _verify(self, envelope: Envelope, giving: Facility, receiving: Facility) -> Transfer:
        try:
            return verify_transfer(
                envelope,
                PublicKey.from_b64(giving.operator.public_key),
                PublicKey.from_b64(receiving.operator.public_key),
            )
        except FormatError as exc:
            # Kept by hand: a transfer the route could parse but that lacks a signature per
            # operator is well-formed yet invalid (422), not malformed (400).
            raise InvalidRequest(str(exc), code="two_signatures_required") from exc
