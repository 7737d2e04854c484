"""Location landmarks (challenges, measurements) and facility power meters (readings)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base, UTCDateTime
from registry.db.models._common import BigId

__all__ = ["Landmark", "LandmarkChallenge", "LandmarkMeasurement", "Meter", "MeterReading"]


class Landmark(Base):
    """A location landmark: a server with its own key at known coordinates."""

    __tablename__ = "landmarks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class LandmarkChallenge(Base):
    """A fresh nonce the registry issued to a landmark for one chip; answered at most once."""

    __tablename__ = "landmark_challenges"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    landmark_id: Mapped[int] = mapped_column(ForeignKey("landmarks.id"), index=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LandmarkMeasurement(Base):
    """An accepted landmark-signed round trip, with its exact envelope bytes as logged."""

    __tablename__ = "landmark_measurements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    landmark_id: Mapped[int] = mapped_column(ForeignKey("landmarks.id"), index=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), index=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    rtt_ms: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    digest: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Meter(Base):
    """A facility power meter with its own key, measuring the whole facility's draw."""

    __tablename__ = "meters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class MeterReading(Base):
    """An accepted meter-signed energy reading for one window, as logged."""

    __tablename__ = "meter_readings"
    __table_args__ = (UniqueConstraint("meter_id", "window_start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    energy_j: Mapped[float] = mapped_column(Float)
    digest: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
