"""What a simulated world produces for the registry: signed usage-report deliveries, meter
readings and landmark measurements, each with its arrival time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Artifacts", "Delivery", "Measurement", "Reading"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A signed usage-report envelope arriving at the registry."""

    received_at: datetime
    order: int
    envelope: bytes
    source: str


@dataclass(frozen=True, slots=True)
class Reading:
    meter_id: int
    received_at: datetime
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Measurement:
    landmark_id: int
    received_at: datetime
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Artifacts:
    """Everything the registry receives from a simulated run, in the order it was produced."""

    deliveries: tuple[Delivery, ...]
    readings: tuple[Reading, ...]
    measurements: tuple[Measurement, ...]
