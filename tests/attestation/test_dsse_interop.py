"""DSSE envelopes made by chipreg verify with securesystemslib's independent implementation,
and a tampered one does not. Covers usage reports and operator-signed declarations."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from attestation.dsse import Envelope
from attestation.keys import PrivateKey
from attestation.logentries import INSTALLATION, sign_declaration
from attestation.report import GENESIS_DIGEST, UsageReport, sign_report


def sslib_key(key: PrivateKey) -> SSlibKey:
    # chipreg's DSSE keyid is the key's key id (hex SHA-256 of the raw public key).
    return SSlibKey(
        key.public_key.key_id,
        "ed25519",
        "ed25519",
        {"public": key.public_key.raw.hex()},
    )


def envelopes(key: PrivateKey) -> list[Envelope]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    report = UsageReport(
        chip_id="NV-H100-0001",
        key_id=key.public_key.key_id,
        seq=1,
        prev_digest=GENESIS_DIGEST,
        window_start=start,
        window_end=start + timedelta(minutes=15),
        utilization=0.5,
        energy_j=315000.0,
        interconnect=(),
    )
    declaration = sign_declaration(
        INSTALLATION,
        {"chip_id": "NV-H100-0001", "facility_id": 1, "installed_at": "2026-02-01T00:00:00Z"},
        key,
    )
    return [sign_report(report, key), declaration]


@pytest.mark.parametrize("which", [0, 1], ids=["usage_report", "declaration"])
def test_chipreg_envelopes_verify_with_securesystemslib(which: int) -> None:
    key = PrivateKey.from_seed(hashlib.sha256(b"interop").digest())
    ours = envelopes(key)[which]
    theirs = SslibEnvelope.from_dict(ours.to_dict())
    assert theirs.payload == ours.payload
    accepted = theirs.verify([sslib_key(key)], 1)
    assert list(accepted) == [key.public_key.key_id]

    tampered = SslibEnvelope.from_dict(
        Envelope(ours.payload + b" ", ours.payload_type, ours.signatures).to_dict()
    )
    with pytest.raises(VerificationError):
        tampered.verify([sslib_key(key)], 1)
    other = PrivateKey.from_seed(hashlib.sha256(b"other").digest())
    with pytest.raises(VerificationError):
        theirs.verify(
            [
                SSlibKey(
                    key.public_key.key_id,
                    "ed25519",
                    "ed25519",
                    {"public": other.public_key.raw.hex()},
                )
            ],
            1,
        )
