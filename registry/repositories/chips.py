"""Chips: enrollment records and their hash-chain heads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.db.models import Chip

__all__ = ["ChipRepository"]


class ChipRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, chip: Chip) -> None:
        self.session.add(chip)
        self.session.flush()

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

    def all(self) -> list[Chip]:
        return list(self.session.scalars(select(Chip).order_by(Chip.chip_id)))

    def update_heads(self, heads: Sequence[dict[str, Any]]) -> None:
        """Move chain heads forward: rows of chip_id, last_seq, last_digest, ... in one batch."""
        if heads:
            self.session.execute(update(Chip), list(heads))
