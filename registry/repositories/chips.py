"""Chips: enrollment records and their hash-chain heads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, insert, select, type_coerce
from sqlalchemy.orm import Session

from registry.db.models import Chip, Facility, Installation
from registry.repositories.bulk import bulk_update

__all__ = ["ChipIngestState", "ChipRepository", "Stay", "custodian_at"]


@dataclass(frozen=True, slots=True)
class ChipIngestState:
    """What ingest needs of a chip: its key, chain head and current custodian, nothing more."""

    chip_id: str
    public_key: bytes
    last_seq: int
    last_digest: str
    last_window_end: datetime | None
    last_log_index: int | None
    operator_id: int | None  # None: not installed anywhere
    decommissioned_at: datetime | None = None
    revoked_at: datetime | None = None
    # When the chip's first declared installation began: no report window starts earlier.
    in_service_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class Stay:
    """One declared installation of a chip: from when, until when, under which operator."""

    installed_at: datetime
    removed_at: datetime | None
    operator_id: int


def custodian_at(stays: Sequence[Stay], at: datetime) -> int | None:
    """The operator that held the chip at ``at``: the latest of ``stays`` (given newest first)
    that began by ``at`` and had not ended by then."""
    for stay in stays:
        if stay.installed_at <= at and (stay.removed_at is None or stay.removed_at > at):
            return stay.operator_id
    return None


class ChipRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, chip: Chip) -> None:
        self.session.add(chip)
        self.session.flush()

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert chips (column dicts) with multi-row INSERTs; defaults apply to omitted columns."""
        self.session.execute(insert(Chip), list(rows))

    def existing_ids(self, chip_ids: Iterable[str]) -> set[str]:
        """Those of ``chip_ids`` already enrolled (queried in chunks of bind parameters)."""
        return self._existing(Chip.chip_id, chip_ids)

    def existing_key_ids(self, key_ids: Iterable[str]) -> set[str]:
        return self._existing(Chip.key_id, key_ids)

    def _existing(self, column: Any, values: Iterable[str]) -> set[str]:
        wanted = list(set(values))
        found: set[str] = set()
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            found.update(self.session.scalars(select(column).where(column.in_(chunk))))
        return found

    def get(self, chip_id: str) -> Chip | None:
        return self.session.get(Chip, chip_id)

    def by_key_id(self, key_id: str) -> Chip | None:
        return self.session.scalar(select(Chip).where(Chip.key_id == key_id))

    def many(self, chip_ids: Iterable[str]) -> dict[str, Chip]:
        ids = list(set(chip_ids))
        if not ids:
            return {}
        return {
            c.chip_id: c for c in self.session.scalars(select(Chip).where(Chip.chip_id.in_(ids)))
        }

    def public_keys(self, chip_ids: Iterable[str]) -> dict[str, bytes]:
        """Raw public keys of those of these chips that are enrolled, in one query."""
        ids = list(set(chip_ids))
        if not ids:
            return {}
        rows = self.session.execute(
            select(Chip.chip_id, Chip.public_key).where(Chip.chip_id.in_(ids))
        )
        return {row[0]: bytes(row[1]) for row in rows}

    def ingest_states(self, chip_ids: Iterable[str]) -> dict[str, ChipIngestState]:
        """Chain heads and custodians of these chips in one query, as plain values.

        Ingest reads this for every batch; selecting columns instead of ORM objects keeps it
        off the profile, and the first installation time is a column of the chip row (kept by
        :meth:`note_installation`), not an aggregate over its installations.
        """
        ids = list(set(chip_ids))
        if not ids:
            return {}
        sqlite = self.session.get_bind().dialect.name == "sqlite"

        def when(column: Any) -> Any:
            # On SQLite the stored text, converted below once per distinct value (a fleet's
            # windows share their bounds), not once per row by SQLAlchemy's DateTime.
            return type_coerce(column, String) if sqlite else column

        current = and_(Installation.chip_id == Chip.chip_id, Installation.removed_at.is_(None))
        rows = self.session.execute(
            select(
                Chip.chip_id,
                Chip.public_key,
                Chip.last_seq,
                Chip.last_digest,
                when(Chip.last_window_end),
                Chip.last_log_index,
                Facility.operator_id,
                when(Chip.decommissioned_at),
                when(Chip.revoked_at),
                when(Chip.first_installed_at),
            )
            .outerjoin(Installation, current)
            .outerjoin(Facility, Facility.id == Installation.facility_id)
            .where(Chip.chip_id.in_(ids))
        )
        parsed: dict[Any, datetime | None] = {None: None}

        def utc(text: Any) -> datetime | None:
            if not sqlite:
                return text  # type: ignore[no-any-return]
            value = parsed.get(text)
            if value is None and text is not None:
                # What UTCDateTime reads from SQLite: naive UTC text, microseconds included.
                value = parsed[text] = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return value

        return {
            row[0]: ChipIngestState(
                row[0],
                bytes(row[1]),
                row[2],
                row[3],
                utc(row[4]),
                row[5],
                row[6],
                utc(row[7]),
                utc(row[8]),
                utc(row[9]),
            )
            for row in rows
        }

    def note_installation(self, chip: Chip, installed_at: datetime) -> None:
        """Keep ``chip.first_installed_at`` the earliest start of its declared installations;
        call it with every installation added."""
        if chip.first_installed_at is None or installed_at < chip.first_installed_at:
            chip.first_installed_at = installed_at

    def stays(self, chip_ids: Iterable[str]) -> dict[str, list[Stay]]:
        """Every declared installation of these chips with its operator, in one query."""
        ids = sorted(set(chip_ids))
        out: dict[str, list[Stay]] = {}
        for start in range(0, len(ids), 1000):
            rows = self.session.execute(
                select(
                    Installation.chip_id,
                    Installation.installed_at,
                    Installation.removed_at,
                    Facility.operator_id,
                )
                .join(Facility, Installation.facility_id == Facility.id)
                .where(Installation.chip_id.in_(ids[start : start + 1000]))
                .order_by(Installation.installed_at.desc(), Installation.id.desc())
            )
            for chip_id, installed_at, removed_at, operator_id in rows:
                out.setdefault(chip_id, []).append(Stay(installed_at, removed_at, operator_id))
        return out

    def all(self) -> list[Chip]:
        return list(self.session.scalars(select(Chip).order_by(Chip.chip_id)))

    def update_heads(self, heads: Sequence[dict[str, Any]]) -> None:
        """Move chain heads forward: rows of chip_id, last_seq, last_digest, ... in one batch."""
        bulk_update(self.session, Chip.__table__, "chip_id", heads)  # type: ignore[arg-type]
