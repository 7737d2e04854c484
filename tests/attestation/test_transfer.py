"""Transfer declarations: the exact signed bytes, both signatures, nothing looser."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from attestation.dsse import Envelope, pae, verify_envelope
from attestation.errors import FormatError, SignatureError
from attestation.keys import PrivateKey
from attestation.transfer import (
    Transfer,
    countersign,
    open_transfer,
    sign_transfer,
    transfer_payload,
    verify_transfer,
)

GIVER = PrivateKey.from_seed(hashlib.sha256(b"giver").digest())
RECEIVER = PrivateKey.from_seed(hashlib.sha256(b"receiver").digest())
OTHER = PrivateKey.from_seed(hashlib.sha256(b"other").digest())
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEAL = Transfer("NV-H100-0001", 3, 7, AT)


def test_payload_is_the_documented_canonical_json() -> None:
    assert transfer_payload(DEAL) == (
        b'{"chip_id":"NV-H100-0001","from_facility_id":3,"to_facility_id":7,'
        b'"transferred_at":"2026-03-01T12:00:00Z","type":"chipreg.dev/declaration/transfer/v1"}'
    )
    # Any zone in, the canonical UTC instant out.
    east = Transfer("NV-H100-0001", 3, 7, AT.astimezone(timezone(timedelta(hours=2))))
    assert transfer_payload(east) == transfer_payload(DEAL)


def test_both_signatures_over_the_same_pae() -> None:
    env = sign_transfer(DEAL, GIVER, RECEIVER)
    assert [s.keyid for s in env.signatures] == [
        GIVER.public_key.key_id,
        RECEIVER.public_key.key_id,
    ]
    message = pae(env.payload_type, env.payload)
    GIVER.public_key.verify(env.signatures[0].sig, message)
    RECEIVER.public_key.verify(env.signatures[1].sig, message)
    assert verify_transfer(env, GIVER.public_key, RECEIVER.public_key) == DEAL
    # Signature order does not matter; each signature counts for one side only.
    swapped = Envelope(env.payload, env.payload_type, env.signatures[::-1])
    assert verify_transfer(swapped, GIVER.public_key, RECEIVER.public_key) == DEAL
    # The giver's offer, countersigned later by the receiver, is the same envelope.
    assert countersign(sign_transfer(DEAL, GIVER), RECEIVER) == env
    assert Envelope.from_json(env.to_json()) == env
    verify_envelope(env, GIVER.public_key)


def test_one_signature_wrong_signers_and_one_key_for_both_sides_fail() -> None:
    offer = sign_transfer(DEAL, GIVER)
    with pytest.raises(FormatError, match="exactly 2 signatures"):
        verify_transfer(offer, GIVER.public_key, RECEIVER.public_key)
    with pytest.raises(FormatError, match="exactly 2 signatures"):
        verify_transfer(
            countersign(countersign(offer, RECEIVER), OTHER), GIVER.public_key, RECEIVER.public_key
        )
    with pytest.raises(SignatureError, match="receiving"):
        verify_transfer(countersign(offer, OTHER), GIVER.public_key, RECEIVER.public_key)
    with pytest.raises(SignatureError, match="giving"):
        verify_transfer(sign_transfer(DEAL, OTHER, RECEIVER), GIVER.public_key, RECEIVER.public_key)
    # One operator key registered for both sides still needs two signatures by it.
    with pytest.raises(FormatError):
        verify_transfer(offer, GIVER.public_key, GIVER.public_key)
    # A signature over other bytes (another chip) does not carry over.
    other_deal = sign_transfer(Transfer("NV-H100-0002", 3, 7, AT), GIVER, RECEIVER)
    mixed = Envelope(
        offer.payload, offer.payload_type, (offer.signatures[0], other_deal.signatures[1])
    )
    with pytest.raises(SignatureError, match="receiving"):
        verify_transfer(mixed, GIVER.public_key, RECEIVER.public_key)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"chip_id":"NV-1","from_facility_id":3,"to_facility_id":7,"transferred_at":"2026-03-01T12:00:00Z"}',
        b'{"chip_id":"NV-1","from_facility_id":3,"to_facility_id":3,"transferred_at":"2026-03-01T12:00:00Z","type":"chipreg.dev/declaration/transfer/v1"}',
        b'{"chip_id":"NV-1","from_facility_id":true,"to_facility_id":7,"transferred_at":"2026-03-01T12:00:00Z","type":"chipreg.dev/declaration/transfer/v1"}',
        b'{"chip_id":"NV-1","from_facility_id":3,"to_facility_id":7,"transferred_at":"2026-03-01T12:00:00","type":"chipreg.dev/declaration/transfer/v1"}',
        b'{"chip_id":"NV-1","from_facility_id":3,"to_facility_id":7,"transferred_at":"2026-03-01T12:00:00Z","type":"chipreg.dev/declaration/installation/v1"}',
        b'{"chip_id":"NV-1","chip_id":"NV-2","from_facility_id":3,"to_facility_id":7,"transferred_at":"2026-03-01T12:00:00Z","type":"chipreg.dev/declaration/transfer/v1"}',
    ],
)
def test_malformed_transfers_are_refused(payload: bytes) -> None:
    env = sign_transfer(DEAL, GIVER, RECEIVER)
    bad = Envelope(payload, env.payload_type, env.signatures)
    with pytest.raises(FormatError):
        open_transfer(bad)
    with pytest.raises(FormatError):
        countersign(bad, RECEIVER)
