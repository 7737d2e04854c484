"""A C2SP tlog-witness: what a treaty partner runs to cosign the registry's checkpoints.

The decision (status codes, consistency, forks) is ``attestation.tlog_witness.add_checkpoint``;
this module is its shell: a JSON state file with the latest cosigned checkpoint per log,
updated atomically (under one lock, written to a temporary file, fsynced and renamed) before
the cosignature is returned, and an HTTP app with ``POST /add-checkpoint`` and the monitoring
endpoint ``GET /<sha256(origin) hex>/checkpoint``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from attestation.cosignature import CosignatureSigner
from attestation.keys import PrivateKey, b64decode_strict
from attestation.note import NoteVerifier
from attestation.tlog_witness import (
    CosignedHead,
    WitnessRefusal,
    add_checkpoint,
    parse_add_checkpoint,
)

__all__ = ["Witness", "create_witness_app", "generate_witness_key", "load_state"]

log = logging.getLogger("chipreg.witness")
MAX_BODY = 64 * 1024


def generate_witness_key(name: str, path: Path) -> CosignatureSigner:
    """Create a new witness key file (mode 0600; refuses to overwrite)."""
    signer = CosignatureSigner(name, PrivateKey.generate())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(signer.skey() + "\n")
    return signer


def load_state(path: Path) -> dict[str, CosignedHead]:
    """The witness's record per log origin; empty if the file does not exist yet."""
    if not path.exists():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {
        origin: CosignedHead(
            origin, int(h["size"]), b64decode_strict(h["root_hash"], "root_hash"), h["note"]
        )
        for origin, h in doc["logs"].items()
    }


def _save_state(path: Path, heads: Mapping[str, CosignedHead]) -> None:
    doc = {
        "logs": {
            o: {"size": h.size, "root_hash": base64.b64encode(h.root_hash).decode(), "note": h.note}
            for o, h in sorted(heads.items())
        }
    }
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Witness:
    """A witness's state and key. ``add`` is atomic: check, persist, then cosign."""

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Mapping[str, NoteVerifier],
        state_file: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.logs = dict(logs)
        self.state_file = state_file
        self.clock = clock
        self._lock = threading.Lock()
        self._heads = load_state(state_file)

    def add(self, body: bytes) -> str:
        """Handle one add-checkpoint body; the cosignature line, or :class:`WitnessRefusal`."""
        request = parse_add_checkpoint(body)
        with self._lock:
            try:
                head, line = add_checkpoint(
                    request, self.logs, self._heads, self.signer, int(self.clock())
                )
            except WitnessRefusal as exc:
                if exc.status == 422:
                    # Validly signed by the log but inconsistent: keep it, it may prove a fork.
                    log.warning("refused checkpoint (possible fork): %s", exc.reason)
                raise
            heads = {
                **self._heads,
                head.origin: CosignedHead(head.origin, head.size, head.root_hash, head.note + line),
            }
            _save_state(self.state_file, heads)
            self._heads = heads
        return line

    def checkpoint(self, origin_hash: str) -> str | None:
        """The latest cosigned checkpoint of the log whose origin hashes to ``origin_hash``."""
        for origin, head in self._heads.items():
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash:
                return head.note
        return None


def create_witness_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="chipreg witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/add-checkpoint")
    async def add(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("request too large\n", status_code=413)
        try:
            line = witness.add(body)
        except WitnessRefusal as exc:
            return Response(exc.body, status_code=exc.status, media_type=exc.content_type)
        return PlainTextResponse(line)

    @app.get("/{origin_hash}/checkpoint")
    def checkpoint(origin_hash: str) -> Response:
        note = witness.checkpoint(origin_hash)
        if note is None:
            return PlainTextResponse("never cosigned a checkpoint of this log\n", status_code=404)
        return PlainTextResponse(note)

    return app
