"""Location by round trip (PROTOCOL.md section 7): challenges and landmark RTT measurements.

A landmark is a server with known coordinates and its own Ed25519 key. It obtains a fresh nonce
from the registry, sends it to a chip (through the agent), and times the chip's signed answer.
The chip signs the *challenge message* (:func:`challenge_message`) under its endorsed key; the
landmark then signs a measurement naming itself, the chip, the nonce, the chip's signature and
the round-trip time. Light in fibre covers about 200 km per ms, so a round trip of ``t`` ms
bounds the landmark-chip distance to about ``100 * t`` km: a chip cannot seem closer than it is.

Parsing is strict in the same way as :mod:`attestation.report`: exact keys, no duplicates,
typed values, and verification always over the exact bytes received.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime

from attestation._json import check_keys, loads_strict
from attestation.dsse import Envelope, pae, sign_envelope
from attestation.errors import FormatError, KeyMismatchError, SignatureError
from attestation.identity import CHIP_ID_PATTERN
from attestation.keys import SIGNATURE_SIZE, PrivateKey, PublicKey, b64decode_strict
from attestation.report import report_digest
from attestation.timefmt import format_time, parse_time, require_utc_seconds

__all__ = [
    "CHALLENGE_PAYLOAD_TYPE",
    "MAX_RTT_MS",
    "MAX_SENSOR_ID",
    "MEASUREMENT_PAYLOAD_TYPE",
    "MEASUREMENT_TYPE",
    "NONCE_HEX_LENGTH",
    "LandmarkMeasurement",
    "VerifiedMeasurement",
    "challenge_message",
    "encode_measurement",
    "open_measurement",
    "parse_measurement",
    "sign_challenge",
    "sign_measurement",
    "validate_sensor_id",
    "verify_challenge_answer",
    "verify_measurement",
]

CHALLENGE_PAYLOAD_TYPE = "application/vnd.chipreg.challenge.v1"
MEASUREMENT_PAYLOAD_TYPE = "application/vnd.chipreg.landmark-measurement+json"
MEASUREMENT_TYPE = "https://chipreg.org/attestation/landmark-measurement/v1"
NONCE_HEX_LENGTH = 64  # 32 random bytes
# Half the Earth's circumference is ~20,000 km, ~200 ms in fibre; a minute is far beyond any
# real round trip and keeps the value a sane float.
MAX_RTT_MS = 60_000.0
MAX_SENSOR_ID = 2**31 - 1

_NONCE = re.compile(r"[0-9a-f]{64}")
_MEASUREMENT_KEYS = frozenset(
    {"type", "landmark_id", "chip_id", "nonce", "chip_signature", "rtt_ms", "measured_at"}
)


def validate_sensor_id(value: object, field: str) -> int:
    """Landmark and meter ids are the registry's integer ids, 1 to 2^31 - 1."""
    if type(value) is not int or not 1 <= value <= MAX_SENSOR_ID:
        raise FormatError(f"{field}: want an integer id >= 1, got {value!r}")
    return value


def _nonce(value: object, field: str = "nonce") -> str:
    if not isinstance(value, str) or _NONCE.fullmatch(value) is None:
        raise FormatError(f"{field}: want {NONCE_HEX_LENGTH} lowercase hex characters")
    return value


def challenge_message(landmark_id: int, chip_id: str, nonce: str) -> bytes:
    """The bytes a chip signs (as a DSSE PAE with :data:`CHALLENGE_PAYLOAD_TYPE`).

    ``chipreg-challenge/v1 LF landmark_id LF chip_id LF nonce LF``: naming the landmark and the
    chip keeps an answer from being replayed to another landmark or for another chip, and the
    payload type keeps it from ever being mistaken for a usage report signature.
    """
    validate_sensor_id(landmark_id, "landmark_id")
    if not isinstance(chip_id, str) or CHIP_ID_PATTERN.match(chip_id) is None:
        raise FormatError(f"chip_id: invalid chip id {chip_id!r}")
    _nonce(nonce)
    return f"chipreg-challenge/v1\n{landmark_id}\n{chip_id}\n{nonce}\n".encode("ascii")


def sign_challenge(landmark_id: int, chip_id: str, nonce: str, key: PrivateKey) -> bytes:
    """The chip's answer: Ed25519 over ``PAE(CHALLENGE_PAYLOAD_TYPE, challenge_message(...))``."""
    return key.sign(pae(CHALLENGE_PAYLOAD_TYPE, challenge_message(landmark_id, chip_id, nonce)))


def verify_challenge_answer(
    landmark_id: int, chip_id: str, nonce: str, signature: bytes, chip_key: PublicKey
) -> None:
    """:class:`SignatureError` unless ``signature`` is the chip's answer to this challenge."""
    message = pae(CHALLENGE_PAYLOAD_TYPE, challenge_message(landmark_id, chip_id, nonce))
    chip_key.verify(signature, message)


@dataclass(frozen=True, slots=True)
class LandmarkMeasurement:
    """A landmark's signed statement: chip ``chip_id`` answered ``nonce`` in ``rtt_ms``."""

    landmark_id: int
    chip_id: str
    nonce: str
    chip_signature: bytes
    rtt_ms: float
    measured_at: datetime

    def __post_init__(self) -> None:
        validate_sensor_id(self.landmark_id, "landmark_id")
        if not isinstance(self.chip_id, str) or CHIP_ID_PATTERN.match(self.chip_id) is None:
            raise FormatError(f"chip_id: invalid chip id {self.chip_id!r}")
        _nonce(self.nonce)
        if not isinstance(self.chip_signature, bytes) or len(self.chip_signature) != (
            SIGNATURE_SIZE
        ):
            raise FormatError(f"chip_signature: want {SIGNATURE_SIZE} bytes")
        rtt = self.rtt_ms
        if not isinstance(rtt, float) and type(rtt) is not int:
            raise FormatError(f"rtt_ms: want a number, got {rtt!r}")
        rtt = float(rtt)
        if not (math.isfinite(rtt) and 0.0 < rtt <= MAX_RTT_MS):
            raise FormatError(f"rtt_ms: want a number in (0, {MAX_RTT_MS}], got {self.rtt_ms!r}")
        object.__setattr__(self, "rtt_ms", rtt)
        require_utc_seconds(self.measured_at, "measured_at")


@dataclass(frozen=True, slots=True)
class VerifiedMeasurement:
    """A measurement whose landmark signature has been checked (the chip's answer has not)."""

    measurement: LandmarkMeasurement
    payload: bytes
    digest: str
    envelope: Envelope


def encode_measurement(m: LandmarkMeasurement) -> bytes:
    """The payload as landmarks send it: compact JSON, sorted keys."""
    obj = {
        "type": MEASUREMENT_TYPE,
        "landmark_id": m.landmark_id,
        "chip_id": m.chip_id,
        "nonce": m.nonce,
        "chip_signature": base64.b64encode(m.chip_signature).decode("ascii"),
        "rtt_ms": m.rtt_ms,
        "measured_at": format_time(m.measured_at),
    }
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def parse_measurement(payload: bytes) -> LandmarkMeasurement:
    """Parse payload bytes strictly; :class:`FormatError` naming the offending field."""
    obj = check_keys(loads_strict(payload, "measurement"), _MEASUREMENT_KEYS, "measurement")
    if obj["type"] != MEASUREMENT_TYPE:
        raise FormatError(f"type: want {MEASUREMENT_TYPE!r}, got {obj['type']!r}")
    sig = obj["chip_signature"]
    if not isinstance(sig, str):
        raise FormatError("chip_signature: want a base64 string")
    measured_at = obj["measured_at"]
    try:
        at = parse_time(measured_at)
    except FormatError as e:
        raise FormatError(f"measured_at: {e}") from None
    if isinstance(obj["rtt_ms"], bool):
        raise FormatError("rtt_ms: want a number, got a boolean")
    return LandmarkMeasurement(
        landmark_id=obj["landmark_id"],
        chip_id=obj["chip_id"],
        nonce=obj["nonce"],
        chip_signature=b64decode_strict(sig, "chip_signature"),
        rtt_ms=obj["rtt_ms"],
        measured_at=at,
    )


def sign_measurement(m: LandmarkMeasurement, key: PrivateKey) -> Envelope:
    """Encode and sign a measurement with the landmark key."""
    return sign_envelope(encode_measurement(m), MEASUREMENT_PAYLOAD_TYPE, key)


def open_measurement(envelope: Envelope) -> LandmarkMeasurement:
    """Check the envelope's shape and parse it WITHOUT verifying (to find the landmark's key)."""
    if envelope.payload_type != MEASUREMENT_PAYLOAD_TYPE:
        raise FormatError(
            f"payloadType: want {MEASUREMENT_PAYLOAD_TYPE!r}, got {envelope.payload_type!r}"
        )
    if len(envelope.signatures) != 1:
        raise FormatError(
            f"signatures: a measurement carries exactly one, got {len(envelope.signatures)}"
        )
    return parse_measurement(envelope.payload)


def verify_measurement(
    envelope: Envelope, landmark_id: int, landmark_key: PublicKey
) -> VerifiedMeasurement:
    """Verify a measurement envelope under the landmark's key and parse it.

    Raises :class:`FormatError`, :class:`SignatureError` (the landmark signature does not verify)
    or :class:`KeyMismatchError` (the payload names another landmark than ``landmark_id``).
    """
    claimed = open_measurement(envelope)
    payload = envelope.payload
    try:
        landmark_key.verify(envelope.signatures[0].sig, pae(envelope.payload_type, payload))
    except SignatureError as e:
        raise SignatureError(f"landmark signature: {e}") from None
    if claimed.landmark_id != landmark_id:
        raise KeyMismatchError(
            f"measurement names landmark {claimed.landmark_id}, verified as {landmark_id}"
        )
    return VerifiedMeasurement(claimed, payload, report_digest(payload), envelope)
