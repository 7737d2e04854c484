"""The checkpoint publisher: signs the log's head about once a second and collects cosignatures.

Request handlers never sign. In ``chipreg serve`` the integrator
(:mod:`registry.workers.integrator`, one process at a time) calls
:meth:`CheckpointPublisher.publish_once` after each round, every
``CHIPREG_CHECKPOINT_INTERVAL_S`` (``start()`` runs it on a thread of its own, for a caller
without an integrator); when the integrated tree grew it signs the head, stores the checkpoint
and submits it to every configured witness with C2SP tlog-witness ``add-checkpoint``: the old
size is the last size that witness cosigned (a 409 answer tells the witness's real size, and
the request is retried once from there) with a consistency proof from stored tiles. Valid
cosignatures are stored with the checkpoint in one transaction, so a checkpoint is never
visible without the cosignatures collected for it (one row per size: with several workers the
first insert wins). A witness that is down delays a checkpoint by at most
``CHIPREG_WITNESS_TIMEOUT_S``.

Transactions: a round reads the head in one short transaction, talks to the witnesses with none
open (a consistency proof is read in its own), and writes the checkpoint with its cosignatures
in a last one; a round that fails is rolled back, logged and retried (:mod:`registry.workers.loop`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from attestation.cosignature import CosignatureVerifier
from attestation.errors import FormatError, SignatureError
from attestation.tlog_witness import SIZE_CONTENT_TYPE, format_add_checkpoint
from registry.db.engine import session_scope
from registry.services.log import LogSigner, PublishedCheckpoint, TransparencyLog
from registry.workers.loop import WorkerLoop

if TYPE_CHECKING:
    import httpx

__all__ = ["CheckpointPublisher", "WitnessEndpoint"]

log = logging.getLogger("chipreg.publisher")
# The longest pause between failing rounds (the log's checkpoint age grows meanwhile).
PUBLISH_MAX_BACKOFF_S = 10.0


@dataclass(frozen=True)
class WitnessEndpoint:
    """A configured witness: its submission prefix and its cosigner verifier key."""

    url: str
    verifier: CosignatureVerifier

    @property
    def name(self) -> str:
        return self.verifier.name


class CheckpointPublisher:
    """Signs and stores checkpoints; ``start()`` runs it every ``interval_s`` on a thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signer: LogSigner,
        clock: Callable[[], datetime],
        *,
        witnesses: Sequence[WitnessEndpoint] = (),
        interval_s: float = 1.0,
        witness_timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.sessions = sessions
        self.signer = signer
        self.clock = clock
        self.witnesses = list(witnesses)
        self.interval_s = interval_s
        # httpx only where witnesses are configured: every worker builds a publisher, and the
        # import is on the path from a restart to the first acknowledged report.
        self._http: httpx.Client | None = None
        if self.witnesses:
            import httpx

            self._http = httpx.Client(timeout=witness_timeout_s, transport=transport)
        self.loop = WorkerLoop(
            "chipreg-checkpoint-publisher",
            self.publish_once,
            interval_s=interval_s,
            logger=log,
            # Short: after a database outage checkpoints resume within seconds of recovery.
            max_backoff_s=PUBLISH_MAX_BACKOFF_S,
        )

    # -- one round ---------------------------------------------------------------------
    def publish_once(self) -> PublishedCheckpoint | None:
        """Sign the head if the log grew, collect cosignatures, then store both at once.

        A checkpoint becomes visible together with the cosignatures gathered for it. Returns
        the newly published checkpoint, or None if there was nothing new (or another worker
        stored this size first).
        """
        with session_scope(self.sessions) as session:
            tlog = TransparencyLog(session, self.signer)
            latest = tlog.repo.latest_checkpoint()
            cp, note = tlog.sign_head()
            if latest is not None and latest.size >= cp.size:
                return None
            known = tlog.repo.witness_sizes()
        lines = {}
        for witness in self.witnesses:
            line = self._submit(witness, known.get(witness.name, 0), cp.size, note)
            if line is not None:
                lines[witness.name] = line
        # Written in a fresh transaction: upgrading a stale SQLite read snapshot to a write
        # fails at once (SQLITE_BUSY) instead of waiting. The checkpoint stays valid: the log
        # only grows.
        with session_scope(self.sessions) as session:
            tlog = TransparencyLog(session, self.signer)
            now = self.clock()
            if not tlog.repo.add_checkpoint(cp.size, cp.root_hash, note, now):
                return None
            for name, line in sorted(lines.items()):
                tlog.repo.add_cosignature(cp.size, name, line, now)
            session.flush()
            return tlog.published(cp.size)

    def _proof(self, old: int, size: int) -> list[bytes]:
        with session_scope(self.sessions) as session:
            return TransparencyLog(session, self.signer).consistency_proof(old, size)

    def _submit(self, witness: WitnessEndpoint, old: int, size: int, note: str) -> str | None:
        """One witness's cosignature line for ``note``, or None (logged) if it gave none.

        No database transaction stays open while a witness answers.
        """
        import httpx

        if self._http is None:  # built in __init__ whenever there are witnesses
            return None
        for _ in range(2):
            if old > size:
                log.warning("witness %s has size %d above ours (%d)", witness.name, old, size)
                return None
            proof = self._proof(old, size) if 0 < old < size else []
            try:
                response = self._http.post(
                    witness.url.rstrip("/") + "/add-checkpoint",
                    content=format_add_checkpoint(old, proof, note),
                )
            except httpx.HTTPError as exc:
                log.warning("witness %s unreachable: %r", witness.name, exc)
                return None
            if response.status_code == 409 and response.headers.get("content-type", "").startswith(
                SIZE_CONTENT_TYPE
            ):
                try:
                    old = int(response.text.strip())
                except ValueError:
                    log.warning("witness %s sent a malformed 409 body", witness.name)
                    return None
                continue
            if response.status_code != 200:
                log.warning(
                    "witness %s refused checkpoint %d: %d %s",
                    witness.name,
                    size,
                    response.status_code,
                    response.text.strip()[:300],
                )
                return None
            return self._cosignature(witness, note, response.text)
        return None

    def _cosignature(self, witness: WitnessEndpoint, note: str, body: str) -> str | None:
        text = note[: note.rfind("\n\n") + 1]
        for line in body.splitlines():
            try:
                cosig = witness.verifier.verify_line(text, line)
            except (FormatError, SignatureError) as exc:
                log.warning("witness %s sent a bad cosignature: %s", witness.name, exc)
                return None
            if cosig is not None:
                return cosig.line
        log.warning("witness %s answered without a cosignature of its key", witness.name)
        return None

    # -- the background thread -----------------------------------------------------------
    def start(self) -> None:
        """Publish every ``interval_s`` on a daemon thread (none when the interval is 0)."""
        if self.interval_s > 0:
            self.loop.start()

    def stop(self) -> None:
        """Stop the thread after the round in progress, then close the witness client."""
        self.loop.stop()
        if self._http is not None:
            self._http.close()
