"""Helpers for tests of the log: wait for the background integrator to publish a checkpoint that
covers a size."""

from __future__ import annotations

import time

import httpx

from attestation.checkpoint import Checkpoint, verify_checkpoint
from attestation.note import NoteVerifier


def wait_checkpoint(
    http: httpx.Client, verifier: NoteVerifier, size: int, timeout: float = 20.0
) -> tuple[Checkpoint, str]:
    """Poll ``/v1/log/checkpoint`` until the published checkpoint has exactly ``size``."""
    deadline = time.monotonic() + timeout
    while True:
        note = http.get("/v1/log/checkpoint").text
        cp = verify_checkpoint(note, verifier)
        if cp.size == size:
            return cp, note
        assert cp.size < size, f"checkpoint size {cp.size} overshot {size}"
        assert time.monotonic() < deadline, f"no checkpoint of size {size} (at {cp.size})"
        time.sleep(0.02)
