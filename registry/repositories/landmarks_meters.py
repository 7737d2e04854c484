"""Landmarks, their challenges and RTT measurements; power meters and their readings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from registry.db.models import (
    Landmark,
    LandmarkChallenge,
    LandmarkMeasurement,
    Meter,
    MeterReading,
)

__all__ = ["LandmarksMetersRepository"]


class LandmarksMetersRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        obj: Landmark | Meter | LandmarkChallenge | LandmarkMeasurement | MeterReading,
    ) -> None:
        self.session.add(obj)
        self.session.flush()

    # -- landmarks ---------------------------------------------------------------------
    def landmark(self, landmark_id: int) -> Landmark | None:
        return self.session.get(Landmark, landmark_id)

    def landmark_by_name(self, name: str) -> Landmark | None:
        return self.session.scalar(select(Landmark).where(Landmark.name == name))

    def landmarks(self) -> list[Landmark]:
        return list(self.session.scalars(select(Landmark).order_by(Landmark.id)))

    def key_in_use(self, key_id: str) -> bool:
        """Whether a landmark or a meter already holds this key."""
        for model in (Landmark, Meter):
            if self.session.scalar(select(model.id).where(model.key_id == key_id)) is not None:
                return True
        return False

    def challenge(self, nonce: str) -> LandmarkChallenge | None:
        return self.session.get(LandmarkChallenge, nonce)

    def mark_answered(self, nonce: str, at: datetime) -> bool:
        """Consume a challenge; False if it was answered already (the row is the guard)."""
        result = self.session.execute(
            update(LandmarkChallenge)
            .where(LandmarkChallenge.nonce == nonce, LandmarkChallenge.answered_at.is_(None))
            .values(answered_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def measurements(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[LandmarkMeasurement]:
        stmt = select(LandmarkMeasurement).order_by(LandmarkMeasurement.id)
        if start is not None:
            stmt = stmt.where(LandmarkMeasurement.measured_at >= start)
        if end is not None:
            stmt = stmt.where(LandmarkMeasurement.measured_at < end)
        return list(self.session.scalars(stmt))

    # -- meters ------------------------------------------------------------------------
    def meter(self, meter_id: int) -> Meter | None:
        return self.session.get(Meter, meter_id)

    def meter_by_name(self, name: str) -> Meter | None:
        return self.session.scalar(select(Meter).where(Meter.name == name))

    def meters(self) -> list[Meter]:
        return list(self.session.scalars(select(Meter).order_by(Meter.id)))

    def reading_at(self, meter_id: int, window_start: datetime) -> MeterReading | None:
        return self.session.scalar(
            select(MeterReading).where(
                MeterReading.meter_id == meter_id, MeterReading.window_start == window_start
            )
        )

    def last_window_end(self, meter_id: int) -> datetime | None:
        value: datetime | None = self.session.scalar(
            select(func.max(MeterReading.window_end)).where(MeterReading.meter_id == meter_id)
        )
        return value

    def readings(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[MeterReading]:
        stmt = select(MeterReading).order_by(MeterReading.id)
        if start is not None:
            stmt = stmt.where(MeterReading.window_end > start)
        if end is not None:
            stmt = stmt.where(MeterReading.window_start < end)
        return list(self.session.scalars(stmt))
