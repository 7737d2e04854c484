"""Export signed audit bundles (see ``audit.bundle``): the registry's side of the selection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from attestation import logentries as le
from attestation.errors import FormatError
from registry.errors import InvalidRequest, NotFound
from registry.repositories.facilities import FacilityRepository
from registry.services.log import LogSigner, TransparencyLog

__all__ = ["BundleService"]

_RECORD_KINDS = (
    le.VENDOR,
    le.OPERATOR,
    le.OPERATOR_KEY,
    le.FACILITY,
    le.ENROLLMENT,
    le.INSTALLATION,
    le.TRANSFER,
    le.CHIP_STATUS,
    le.CLUSTER,
    le.VERIFIER_RUN,
)


class BundleService:
    def __init__(self, session: Session, signer: LogSigner, clock: Callable[[], datetime]):
        self.log = TransparencyLog(session, signer)
        self.facilities = FacilityRepository(session)
        self.clock = clock

    def export(
        self,
        *,
        facility_id: int | None,
        country: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> bytes:
        """A bundle of ``scope`` against the latest published checkpoint, signed by the log."""
        # The auditor (audit.core) comes with audit.bundle: imported per export, not at API
        # start-up (docs/benchmarks.md, recovery after kill -9).
        from audit.bundle import BundleEntry, Scope, build_bundle, select_records

        try:
            scope = Scope(facility_id, country, start, end)
        except FormatError as exc:
            # Kept by hand: a scope is query parameters that parsed fine but do not make a scope
            # (422), not a body that does not parse (400, the default for a format error).
            raise InvalidRequest(str(exc), code="bad_scope") from exc
        # An empty bundle for a facility that does not exist would read as "nothing happened
        # there", a signed statement about something the registry never heard of.
        if facility_id is not None and self.facilities.get(facility_id) is None:
            raise NotFound(f"no facility {facility_id}", code="unknown_facility")
        published = self.log.published()
        if published is None or published.size == 0:
            raise NotFound("no checkpoint is published yet", code="not_yet_published")
        size = published.size
        records = self.log.repo.entries_of_kinds(_RECORD_KINDS, size)
        chosen, chips = select_records(records, scope)
        indexes = [i for i in self.log.repo.report_indexes(chips, start, end) if i < size]
        entries = [
            BundleEntry(
                e.index, e.kind, bytes(e.body), tuple(self.log.inclusion_proof(e.index, size))
            )
            for e in self.log.repo.entries_at(set(chosen) | set(indexes))
        ]
        return build_bundle(
            origin=self.log.signer.origin,
            scope=scope,
            checkpoint=published.cosigned_note,
            entries=entries,
            key=self.log.signer.signer.private_key,
            created_at=self.clock(),
        )
