"""GPU challenges and the chips' GPU hardware identities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.db.models import Chip, GpuAttestation, GpuChallenge

__all__ = ["GpuRepository"]


class GpuRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, challenge: GpuChallenge) -> None:
        self.session.add(challenge)
        self.session.flush()

    def challenge(self, nonce: str) -> GpuChallenge | None:
        return self.session.get(GpuChallenge, nonce)

    def mark_answered(self, nonce: str, at: datetime) -> bool:
        """Consume a challenge; False if it was answered already (the row is the guard)."""
        result = self.session.execute(
            update(GpuChallenge)
            .where(GpuChallenge.nonce == nonce, GpuChallenge.answered_at.is_(None))
            .values(answered_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def open_challenges(self, chip_id: str, now: datetime) -> list[GpuChallenge]:
        """Unanswered, unexpired challenges of one chip, oldest first."""
        return list(
            self.session.scalars(
                select(GpuChallenge)
                .where(
                    GpuChallenge.chip_id == chip_id,
                    GpuChallenge.answered_at.is_(None),
                    GpuChallenge.expires_at >= now,
                )
                .order_by(GpuChallenge.issued_at, GpuChallenge.nonce)
            )
        )

    def chip_by_hardware_id(self, hardware_id: str) -> Chip | None:
        return self.session.scalar(select(Chip).where(Chip.hardware_id == hardware_id))

    def add_attestation(self, attestation: GpuAttestation) -> None:
        self.session.add(attestation)
        self.session.flush()

    def attestations(self, before: datetime) -> list[GpuAttestation]:
        """Verified GPU evidence of every chip up to ``before``, in log order."""
        return list(
            self.session.scalars(
                select(GpuAttestation)
                .where(GpuAttestation.verified_at < before)
                .order_by(GpuAttestation.log_index)
            )
        )
