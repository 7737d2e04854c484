"""Answering a landmark's location challenge with the chip key (PROTOCOL.md section 7).

The landmark times the round trip from sending the nonce to receiving this answer; the chip
signs ``PAE(CHALLENGE_PAYLOAD_TYPE, challenge_message(...))`` so the answer cannot be forged by
the (untrusted) agent nor reused for another landmark, chip or nonce.
"""

from __future__ import annotations

from agents.backends.base import Accelerator
from attestation.dsse import pae
from attestation.landmark import CHALLENGE_PAYLOAD_TYPE, challenge_message

__all__ = ["answer_challenge"]


def answer_challenge(chip: Accelerator, landmark_id: int, nonce: str) -> bytes:
    """The chip's Ed25519 signature over the challenge for (``landmark_id``, chip, ``nonce``)."""
    return chip.sign(
        pae(CHALLENGE_PAYLOAD_TYPE, challenge_message(landmark_id, chip.chip_id, nonce))
    )
