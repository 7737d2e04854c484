"""GPU device evidence: challenges (nonces) and verified attestations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base, UTCDateTime
from registry.db.models._common import BigId

__all__ = ["GpuAttestation", "GpuChallenge"]


class GpuChallenge(Base):
    """A fresh nonce the registry issued for GPU evidence over one chip key; used at most once."""

    __tablename__ = "gpu_challenges"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex
    purpose: Mapped[str] = mapped_column(String(16))  # "enrollment" | "reattestation"
    chip_public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    chip_id: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GpuAttestation(Base):
    """Verified GPU evidence of a chip (enrollment or re-attestation), as logged."""

    __tablename__ = "gpu_attestations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    hardware_id: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
