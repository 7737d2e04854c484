"""Custody transfer between operators: one declaration signed by both of them.

A transfer is a DSSE envelope (payload type ``application/vnd.chipreg.declaration+json``)
whose payload is the canonical JSON

    {"chip_id": ..., "from_facility_id": ..., "to_facility_id": ...,
     "transferred_at": "<RFC 3339 UTC, Z>", "type": "chipreg.dev/declaration/transfer/v1"}

carrying exactly two signatures over the same PAE: the giving operator's key (the operator of
``from_facility_id``) and the receiving operator's (of ``to_facility_id``). One envelope rather
than an offer and an acceptance: both parties sign the identical bytes, so there is nothing
half-agreed for the registry to hold, one log entry carries the whole agreement, and any DSSE
verifier checks it. The giver signs first (:func:`sign_transfer`), hands the envelope to the
receiver, who adds its signature (:func:`countersign`) and posts it.

Pure: bytes and keys in, typed values out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from attestation._json import check_keys, loads_strict
from attestation.dsse import Envelope, Signature, pae, sign_envelope
from attestation.errors import FormatError, SignatureError
from attestation.identity import validate_chip_id
from attestation.keys import PrivateKey, PublicKey
from attestation.logentries import (
    DECLARATION_KINDS,
    DECLARATION_PAYLOAD_TYPE,
    TRANSFER,
    canonical_json,
    parse_timestamp,
    timestamp,
)

__all__ = [
    "TRANSFER_TYPE",
    "Transfer",
    "countersign",
    "open_transfer",
    "sign_transfer",
    "transfer_payload",
    "verify_transfer",
]

TRANSFER_TYPE = DECLARATION_KINDS[TRANSFER]
_KEYS = frozenset({"type", "chip_id", "from_facility_id", "to_facility_id", "transferred_at"})
_MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Transfer:
    """The chip passes from the facility ``from_facility_id`` (the giving operator's) to
    ``to_facility_id`` (the receiving operator's) at ``transferred_at``."""

    chip_id: str
    from_facility_id: int
    to_facility_id: int
    transferred_at: datetime

    def __post_init__(self) -> None:
        validate_chip_id(self.chip_id)
        for name in ("from_facility_id", "to_facility_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_ID:
                raise FormatError(f"transfer {name} must be an integer >= 1")
        if self.from_facility_id == self.to_facility_id:
            raise FormatError("a transfer goes to another facility")
        timestamp(self.transferred_at)  # timezone-aware, or FormatError


def transfer_payload(transfer: Transfer) -> bytes:
    """The exact signed bytes: canonical JSON (sorted keys, no whitespace, UTF-8)."""
    return canonical_json(
        {
            "type": TRANSFER_TYPE,
            "chip_id": transfer.chip_id,
            "from_facility_id": transfer.from_facility_id,
            "to_facility_id": transfer.to_facility_id,
            "transferred_at": timestamp(transfer.transferred_at),
        }
    )


def sign_transfer(
    transfer: Transfer, giver: PrivateKey, receiver: PrivateKey | None = None
) -> Envelope:
    """The giving operator's signed transfer; with ``receiver``, countersigned too."""
    envelope = sign_envelope(transfer_payload(transfer), DECLARATION_PAYLOAD_TYPE, giver)
    return envelope if receiver is None else countersign(envelope, receiver)


def countersign(envelope: Envelope, key: PrivateKey) -> Envelope:
    """``envelope`` with one more signature by ``key`` over the same PAE (checked to be a
    transfer first: nobody should countersign bytes it has not read)."""
    open_transfer(envelope)
    sig = key.sign(pae(envelope.payload_type, envelope.payload))
    return Envelope(
        envelope.payload,
        envelope.payload_type,
        (*envelope.signatures, Signature(key.public_key.key_id, sig)),
    )


def open_transfer(envelope: Envelope) -> Transfer:
    """The transfer in ``envelope`` (signatures NOT checked); :class:`FormatError` otherwise.

    Strict: exactly the five fields, integers for the facility ids, the canonical timestamp.
    Any JSON layout of the payload is accepted (the signatures cover the bytes received).
    """
    if envelope.payload_type != DECLARATION_PAYLOAD_TYPE:
        raise FormatError(f"declaration payloadType must be {DECLARATION_PAYLOAD_TYPE!r}")
    obj = check_keys(loads_strict(envelope.payload, "transfer"), _KEYS, "transfer")
    if obj["type"] != TRANSFER_TYPE:
        raise FormatError(f"payload is not a {TRANSFER_TYPE} declaration")
    chip_id, at = obj["chip_id"], obj["transferred_at"]
    if not isinstance(chip_id, str) or not isinstance(at, str):
        raise FormatError("transfer chip_id and transferred_at must be strings")
    return Transfer(chip_id, obj["from_facility_id"], obj["to_facility_id"], parse_timestamp(at))


def verify_transfer(envelope: Envelope, giver: PublicKey, receiver: PublicKey) -> Transfer:
    """Check that ``envelope`` is a transfer signed by both operators; return it.

    Exactly two signatures, one verifying under ``giver`` and the *other* under ``receiver``
    (one signature never counts for both, even if both operators registered the same key).
    :class:`FormatError` for a malformed transfer or a signature count other than two;
    :class:`SignatureError` naming the side whose signature is missing.
    """
    transfer = open_transfer(envelope)
    if len(envelope.signatures) != 2:
        raise FormatError(
            f"a transfer carries exactly 2 signatures (giver and receiver), "
            f"got {len(envelope.signatures)}"
        )
    message = pae(envelope.payload_type, envelope.payload)

    def verifies(sig: Signature, key: PublicKey) -> bool:
        try:
            key.verify(sig.sig, message)
        except SignatureError:
            return False
        return True

    first, second = envelope.signatures
    if verifies(first, giver) and verifies(second, receiver):
        return transfer
    if verifies(second, giver) and verifies(first, receiver):
        return transfer
    if not (verifies(first, giver) or verifies(second, giver)):
        raise SignatureError(f"no signature by the giving operator's key {giver.key_id}")
    raise SignatureError(f"no signature by the receiving operator's key {receiver.key_id}")
