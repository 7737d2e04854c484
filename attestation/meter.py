"""Facility power meters (PROTOCOL.md section 8): signed energy readings per window.

A meter is registered to one facility with its own Ed25519 key. For each window it signs the
energy the whole facility drew (IT load, cooling and everything else behind the meter). The
verifier compares that with the energy the facility's chips reported, allowing for the
declared PUE and non-IT load: what the declared chips cannot explain is a ghost.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from attestation._json import check_keys, loads_strict
from attestation.dsse import Envelope, pae, sign_envelope
from attestation.errors import FormatError, KeyMismatchError, SignatureError
from attestation.keys import PrivateKey, PublicKey
from attestation.landmark import validate_sensor_id
from attestation.report import report_digest
from attestation.timefmt import format_time, parse_time, require_utc_seconds

__all__ = [
    "MAX_READING_WINDOW",
    "READING_PAYLOAD_TYPE",
    "READING_TYPE",
    "MeterReading",
    "VerifiedReading",
    "encode_reading",
    "open_reading",
    "parse_reading",
    "sign_reading",
    "verify_reading",
]

READING_PAYLOAD_TYPE = "application/vnd.chipreg.meter-reading+json"
READING_TYPE = "https://chipreg.org/attestation/meter-reading/v1"
MAX_READING_WINDOW = timedelta(hours=24)
# 10 GW for 24 hours is ~8.6e14 J; anything above 1e18 J is not a facility.
MAX_ENERGY_J = 1e18
MAX_FACILITY_ID = 2**31 - 1

_READING_KEYS = frozenset({"type", "meter_id", "facility_id", "window", "energy_j"})
_WINDOW_KEYS = frozenset({"start", "end"})


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Energy in joules that facility ``facility_id`` drew over ``[window_start, window_end)``."""

    meter_id: int
    facility_id: int
    window_start: datetime
    window_end: datetime
    energy_j: float

    def __post_init__(self) -> None:
        validate_sensor_id(self.meter_id, "meter_id")
        if type(self.facility_id) is not int or not 1 <= self.facility_id <= MAX_FACILITY_ID:
            raise FormatError(f"facility_id: want an integer >= 1, got {self.facility_id!r}")
        start = require_utc_seconds(self.window_start, "window.start")
        end = require_utc_seconds(self.window_end, "window.end")
        if end <= start:
            raise FormatError("window: end must be later than start")
        if end - start > MAX_READING_WINDOW:
            raise FormatError("window: longer than 24 hours")
        e = self.energy_j
        if not isinstance(e, float) and type(e) is not int:
            raise FormatError(f"energy_j: want a number, got {e!r}")
        f = float(e)
        if not (math.isfinite(f) and 0.0 <= f <= MAX_ENERGY_J):
            raise FormatError(f"energy_j: want a number in [0, {MAX_ENERGY_J:g}], got {e!r}")
        object.__setattr__(self, "energy_j", f)


@dataclass(frozen=True, slots=True)
class VerifiedReading:
    """A reading whose meter signature and meter id have been checked."""

    reading: MeterReading
    payload: bytes
    digest: str
    envelope: Envelope


def encode_reading(r: MeterReading) -> bytes:
    """The payload as meters send it: compact JSON, sorted keys."""
    obj = {
        "type": READING_TYPE,
        "meter_id": r.meter_id,
        "facility_id": r.facility_id,
        "window": {"start": format_time(r.window_start), "end": format_time(r.window_end)},
        "energy_j": r.energy_j,
    }
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _time(value: object, field: str) -> datetime:
    try:
        return parse_time(value)  # type: ignore[arg-type]
    except FormatError as e:
        raise FormatError(f"{field}: {e}") from None


def parse_reading(payload: bytes) -> MeterReading:
    """Parse payload bytes strictly; :class:`FormatError` naming the offending field."""
    obj = check_keys(loads_strict(payload, "reading"), _READING_KEYS, "reading")
    if obj["type"] != READING_TYPE:
        raise FormatError(f"type: want {READING_TYPE!r}, got {obj['type']!r}")
    window = check_keys(obj["window"], _WINDOW_KEYS, "window")
    if isinstance(obj["energy_j"], bool):
        raise FormatError("energy_j: want a number, got a boolean")
    return MeterReading(
        meter_id=obj["meter_id"],
        facility_id=obj["facility_id"],
        window_start=_time(window["start"], "window.start"),
        window_end=_time(window["end"], "window.end"),
        energy_j=obj["energy_j"],
    )


def sign_reading(r: MeterReading, key: PrivateKey) -> Envelope:
    """Encode and sign a reading with the meter key."""
    return sign_envelope(encode_reading(r), READING_PAYLOAD_TYPE, key)


def open_reading(envelope: Envelope) -> MeterReading:
    """Check the envelope's shape and parse it WITHOUT verifying (to find the meter's key)."""
    if envelope.payload_type != READING_PAYLOAD_TYPE:
        raise FormatError(
            f"payloadType: want {READING_PAYLOAD_TYPE!r}, got {envelope.payload_type!r}"
        )
    if len(envelope.signatures) != 1:
        raise FormatError(
            f"signatures: a reading carries exactly one, got {len(envelope.signatures)}"
        )
    return parse_reading(envelope.payload)


def verify_reading(envelope: Envelope, meter_id: int, meter_key: PublicKey) -> VerifiedReading:
    """Verify a reading envelope under the meter's key and parse it.

    Raises :class:`FormatError`, :class:`SignatureError` or :class:`KeyMismatchError` (the
    payload names another meter than ``meter_id``).
    """
    claimed = open_reading(envelope)
    payload = envelope.payload
    try:
        meter_key.verify(envelope.signatures[0].sig, pae(envelope.payload_type, payload))
    except SignatureError as e:
        raise SignatureError(f"meter signature: {e}") from None
    if claimed.meter_id != meter_id:
        raise KeyMismatchError(f"reading names meter {claimed.meter_id}, verified as {meter_id}")
    return VerifiedReading(claimed, payload, report_digest(payload), envelope)
