"""The log's signing key: loaded from ``CHIPREG_LOG_KEY_FILE`` (created in development)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from attestation.keys import PrivateKey
from attestation.note import NoteSigner, signer_from_skey
from registry.services.log import LogSigner
from registry.settings import Environment, Settings

__all__ = ["create_log_key", "load_log_signer"]


def load_log_signer(settings: Settings) -> LogSigner:
    path = settings.log_key_file
    if not path.exists():
        if settings.environment is not Environment.DEVELOPMENT:
            msg = f"log key {path} does not exist"
            raise FileNotFoundError(msg)
        create_log_key(path, settings.log_origin)
    signer = signer_from_skey(path.read_text().strip())
    if signer.name != settings.log_origin:
        msg = f"log key {path} is for origin {signer.name!r}, not {settings.log_origin!r}"
        raise ValueError(msg)
    return LogSigner(origin=settings.log_origin, signer=signer)


def create_log_key(path: Path, origin: str) -> NoteSigner:
    """Write a new log key to ``path`` (mode 0600); :class:`FileExistsError` if one is there.

    Never overwrites: a second key for the same log would fork its identity for every partner
    that pinned the first one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = PrivateKey.generate()
    signer = NoteSigner(origin, key)
    # C2SP signed-note private key encoding: PRIVATE+KEY+<name>+<key id>+base64(0x01 || seed).
    encoded = base64.b64encode(b"\x01" + key.seed).decode()
    skey = f"PRIVATE+KEY+{origin}+{signer.key_id.hex()}+{encoded}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(skey + "\n")
    return signer
