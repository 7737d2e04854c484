"""Landmarks and meters: evidence not signed by the chip (where it is, what its facility draws).

Location landmarks measure a chip's round-trip time to a nonce; facility power meters sign
their energy readings.

Each accepted measurement or reading is verified over the exact bytes received, stored, and
appended to the transparency log in the same transaction; anything that fails is rejected with
a precise code and changes nothing (the request scope rolls back).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from attestation.dsse import Envelope
from attestation.keys import PublicKey
from attestation.landmark import open_measurement, verify_challenge_answer, verify_measurement
from attestation.meter import open_reading, verify_reading
from attestation.records import LandmarkRecord, MeterRecord
from registry.auth import Principal, Role
from registry.db.models import (
    Landmark,
    LandmarkChallenge,
    LandmarkMeasurement,
    Meter,
    MeterReading,
)
from registry.errors import (
    AlreadyExists,
    Conflict,
    InvalidRequest,
    NotFound,
    reported_as,
)
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.repositories.landmarks_meters import LandmarksMetersRepository
from registry.services.log import LogAppender, TransparencyLog

__all__ = [
    "LOG_KIND_MEASUREMENT",
    "LOG_KIND_READING",
    "LandmarksMetersService",
    "LoggedArtifact",
]

LOG_KIND_MEASUREMENT = "landmark_measurement"
LOG_KIND_READING = "meter_reading"


@dataclass(frozen=True)
class LoggedArtifact:
    """An accepted measurement or reading: its row id, digest and log index."""

    id: int
    digest: str
    log_index: int


def _public_key(b64: str) -> PublicKey:
    return PublicKey.from_b64(b64)  # bad_public_key (422) if it is not a key


def _envelope(obj: object, what: str) -> Envelope:
    with reported_as(f"malformed_{what}"):
        return Envelope.from_dict(obj)


class LandmarksMetersService:
    def __init__(
        self,
        session: Session,
        clock: Callable[[], datetime],
        *,
        log: TransparencyLog | None = None,
        challenge_ttl: timedelta = timedelta(seconds=60),
        max_skew: timedelta = timedelta(seconds=120),
    ) -> None:
        self.repo = LandmarksMetersRepository(session)
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.log = log
        self.appender = LogAppender(session)
        self.clock = clock
        self.challenge_ttl = challenge_ttl
        self.max_skew = max_skew

    # -- registration (admin) ------------------------------------------------------------
    def _check_new_key(self, key: PublicKey) -> None:
        if self.repo.key_in_use(key.key_id):
            raise AlreadyExists("another landmark or meter holds this key", code="duplicate_key")

    def register_landmark(
        self, caller: Principal, *, name: str, public_key: str, latitude: float, longitude: float
    ) -> Landmark:
        caller.require(Role.ADMIN)
        key = _public_key(public_key)
        if self.repo.landmark_by_name(name) is not None:
            raise AlreadyExists(f"a landmark named {name!r} exists")
        self._check_new_key(key)
        landmark = Landmark(
            name=name,
            public_key=key.raw,
            key_id=key.key_id,
            latitude=latitude,
            longitude=longitude,
            created_at=self.clock(),
        )
        self.repo.add(landmark)
        # Logged with its key: partners check measurements against it and locate from it.
        landmark.log_index = self.appender.append_record(
            LandmarkRecord(
                landmark_id=landmark.id,
                name=name,
                public_key=key.to_b64(),
                latitude=latitude,
                longitude=longitude,
                registered_at=landmark.created_at,
            ),
            landmark.created_at,
        )
        return landmark

    def register_meter(
        self, caller: Principal, *, name: str, facility_id: int, public_key: str
    ) -> Meter:
        caller.require(Role.ADMIN)
        key = _public_key(public_key)
        if self.facilities.get(facility_id) is None:
            raise NotFound(f"no facility {facility_id}", code="unknown_facility")
        if self.repo.meter_by_name(name) is not None:
            raise AlreadyExists(f"a meter named {name!r} exists")
        self._check_new_key(key)
        meter = Meter(
            name=name,
            facility_id=facility_id,
            public_key=key.raw,
            key_id=key.key_id,
            created_at=self.clock(),
        )
        self.repo.add(meter)
        meter.log_index = self.appender.append_record(
            MeterRecord(
                meter_id=meter.id,
                name=name,
                facility_id=facility_id,
                public_key=key.to_b64(),
                registered_at=meter.created_at,
            ),
            meter.created_at,
        )
        return meter

    def _landmark(self, landmark_id: int) -> Landmark:
        landmark = self.repo.landmark(landmark_id)
        if landmark is None:
            raise NotFound(f"no landmark {landmark_id}", code="unknown_landmark")
        return landmark

    # -- challenges ----------------------------------------------------------------------
    def issue_challenge(
        self, caller: Principal, *, landmark_id: int, chip_id: str
    ) -> LandmarkChallenge:
        """A fresh 256-bit nonce for this landmark to send to this chip."""
        caller.require(Role.ADMIN, Role.LANDMARK)
        self._landmark(landmark_id)
        if self.chips.get(chip_id) is None:
            raise NotFound(f"chip {chip_id!r} is not enrolled", code="unknown_chip")
        now = self.clock()
        challenge = LandmarkChallenge(
            nonce=secrets.token_hex(32),
            landmark_id=landmark_id,
            chip_id=chip_id,
            issued_at=now,
            expires_at=now + self.challenge_ttl,
        )
        self.repo.add(challenge)
        return challenge

    # -- measurements --------------------------------------------------------------------
    def ingest_measurement(self, caller: Principal, body: object) -> LoggedArtifact:
        """Verify a landmark measurement (both signatures, the nonce), store it and log it."""
        caller.require(Role.ADMIN, Role.LANDMARK)
        envelope = _envelope(body, "measurement")
        with reported_as("malformed_measurement"):
            claimed = open_measurement(envelope)
        landmark = self._landmark(claimed.landmark_id)
        verified = verify_measurement(envelope, landmark.id, PublicKey(bytes(landmark.public_key)))
        m = verified.measurement
        challenge = self.repo.challenge(m.nonce)
        if challenge is None:
            raise NotFound("the registry never issued this nonce", code="unknown_nonce")
        if challenge.landmark_id != m.landmark_id or challenge.chip_id != m.chip_id:
            raise InvalidRequest(
                "the nonce was issued for another landmark or chip", code="nonce_mismatch"
            )
        now = self.clock()
        if challenge.answered_at is not None:
            raise Conflict("this nonce was answered already", code="replayed_measurement")
        if now > challenge.expires_at + self.max_skew:
            raise Conflict(
                f"the nonce expired at {challenge.expires_at.isoformat()}", code="stale_nonce"
            )
        if not (
            challenge.issued_at - self.max_skew
            <= m.measured_at
            <= challenge.expires_at + self.max_skew
        ):
            raise InvalidRequest(
                "measured_at lies outside the nonce's validity", code="bad_measurement_time"
            )
        chip = self.chips.get(m.chip_id)
        if chip is None:  # enrolled when the nonce was issued; kept for type narrowing
            raise NotFound(f"chip {m.chip_id!r} is not enrolled", code="unknown_chip")
        # Its own code: the landmark's signature verified, the chip's answer inside it did not.
        with reported_as("bad_chip_signature"):
            verify_challenge_answer(
                m.landmark_id, m.chip_id, m.nonce, m.chip_signature, PublicKey(chip.public_key)
            )
        if not self.repo.mark_answered(m.nonce, now):
            raise Conflict("this nonce was answered already", code="replayed_measurement")
        body_bytes = envelope.to_json()
        log_index = self._append(LOG_KIND_MEASUREMENT, body_bytes, now)
        row = LandmarkMeasurement(
            landmark_id=m.landmark_id,
            chip_id=m.chip_id,
            nonce=m.nonce,
            rtt_ms=m.rtt_ms,
            measured_at=m.measured_at,
            digest=verified.digest,
            envelope=body_bytes,
            log_index=log_index,
            received_at=now,
        )
        self.repo.add(row)
        return LoggedArtifact(row.id, verified.digest, log_index)

    # -- meter readings ------------------------------------------------------------------
    def ingest_reading(self, caller: Principal, body: object) -> LoggedArtifact:
        """Verify a meter reading, check its window, store it and log it."""
        caller.require(Role.ADMIN, Role.METER)
        envelope = _envelope(body, "reading")
        with reported_as("malformed_reading"):
            claimed = open_reading(envelope)
        meter = self.repo.meter(claimed.meter_id)
        if meter is None:
            raise NotFound(f"no meter {claimed.meter_id}", code="unknown_meter")
        verified = verify_reading(envelope, meter.id, PublicKey(bytes(meter.public_key)))
        r = verified.reading
        if r.facility_id != meter.facility_id:
            raise InvalidRequest(
                f"meter {meter.id} is registered to facility {meter.facility_id}, "
                f"not {r.facility_id}",
                code="facility_mismatch",
            )
        now = self.clock()
        if r.window_end > now + self.max_skew:
            raise InvalidRequest("the window has not ended yet", code="window_in_future")
        existing = self.repo.reading_at(meter.id, r.window_start)
        if existing is not None:
            if existing.digest == verified.digest:
                raise Conflict("this reading was already accepted", code="replayed_reading")
            raise Conflict(
                "the meter already has a different reading for this window",
                code="reading_conflict",
            )
        last_end = self.repo.last_window_end(meter.id)
        if last_end is not None and r.window_start < last_end:
            raise Conflict(
                "the window starts before the meter's previous window ended",
                code="window_out_of_order",
            )
        body_bytes = envelope.to_json()
        log_index = self._append(LOG_KIND_READING, body_bytes, now)
        row = MeterReading(
            meter_id=meter.id,
            facility_id=r.facility_id,
            window_start=r.window_start,
            window_end=r.window_end,
            energy_j=r.energy_j,
            digest=verified.digest,
            envelope=body_bytes,
            log_index=log_index,
            received_at=now,
        )
        self.repo.add(row)
        return LoggedArtifact(row.id, verified.digest, log_index)

    def _append(self, kind: str, body: bytes, at: datetime) -> int:
        return self.appender.append(kind, [body], at)
