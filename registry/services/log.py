"""The transparency log: batched appends, signed checkpoints and proofs.

The tree head (size + compact range) lives in one row that each append transaction locks, so
appending costs O(log n) hashes per entry and never recomputes the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from attestation import merkle
from attestation.checkpoint import Checkpoint, sign_checkpoint
from attestation.note import NoteSigner
from registry.db.models import LogState
from registry.errors import BadRequest, NotFound
from registry.repositories.log import LogRepository

__all__ = ["LogEntryOut", "LogSigner", "TransparencyLog"]

HASH = 32


@dataclass(frozen=True)
class LogSigner:
    """The log's identity: checkpoint origin and note signer. One per process."""

    origin: str
    signer: NoteSigner

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier_key()


@dataclass(frozen=True)
class LogEntryOut:
    index: int
    kind: str
    leaf_hash: bytes
    body: bytes
    created_at: datetime


def _pack(hashes: Sequence[bytes]) -> bytes:
    return b"".join(hashes)


def _unpack(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH] for i in range(0, len(blob), HASH)]


class TransparencyLog:
    def __init__(self, session: Session, signer: LogSigner) -> None:
        self.repo = LogRepository(session)
        self.signer = signer
        self._locked: LogState | None = None

    def append(self, kind: str, bodies: Sequence[bytes], at: datetime) -> int:
        """Append entries in one batch; returns the index of the first. Caller commits."""
        state = self._locked or self.repo.lock_state()
        tree = merkle.CompactRange.from_hashes(state.size, _unpack(state.compact_range))
        first = state.size
        rows = []
        for offset, body in enumerate(bodies):
            leaf = merkle.leaf_hash(body)
            tree.append(leaf)
            rows.append(
                {
                    "index": first + offset,
                    "kind": kind,
                    "leaf_hash": leaf,
                    "body": body,
                    "created_at": at,
                }
            )
        self.repo.insert_entries(rows)
        state.size = tree.size
        state.compact_range = _pack(tree.to_hashes())
        state.root_hash = tree.root()
        state.updated_at = at
        return first

    def lock(self) -> int:
        """Take the append lock early in a transaction; returns the current size.

        The locked tree head is kept for :meth:`append` in the same transaction, so a batch
        takes the lock (and reads the head) once.
        """
        self._locked = self.repo.lock_state()
        return self._locked.size

    def head(self) -> tuple[int, bytes]:
        state = self.repo.state()
        if state is None:
            return 0, merkle.EMPTY_ROOT
        return state.size, bytes(state.root_hash)

    def checkpoint(self) -> Checkpoint:
        size, root = self.head()
        return Checkpoint(origin=self.signer.origin, size=size, root_hash=root)

    def signed_checkpoint(self) -> str:
        return sign_checkpoint(self.checkpoint(), self.signer.signer)

    def _check_size(self, tree_size: int) -> None:
        size, _ = self.head()
        if tree_size < 1 or tree_size > size:
            raise BadRequest(
                f"tree_size must be between 1 and the log size {size}", code="bad_tree_size"
            )

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        self._check_size(tree_size)
        if not 0 <= index < tree_size:
            raise BadRequest(f"index {index} is not below tree_size {tree_size}", code="bad_index")
        return merkle.inclusion_proof(index, self.repo.leaf_hashes(tree_size))

    def index_of(self, leaf_hash: bytes) -> int:
        index = self.repo.index_of_leaf(leaf_hash)
        if index is None:
            raise NotFound("no log entry has this leaf hash", code="unknown_leaf")
        return index

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        self._check_size(second)
        if not 1 <= first <= second:
            raise BadRequest("need 1 <= first <= second", code="bad_tree_size")
        return merkle.consistency_proof(first, self.repo.leaf_hashes(second))

    def entries(self, start: int, end: int) -> list[LogEntryOut]:
        size, _ = self.head()
        if not 0 <= start < end:
            raise BadRequest("need 0 <= start < end", code="bad_range")
        if end - start > 1000:
            raise BadRequest("at most 1000 entries per request", code="bad_range")
        return [
            LogEntryOut(e.index, e.kind, bytes(e.leaf_hash), bytes(e.body), e.created_at)
            for e in self.repo.entries(start, min(end, size))
        ]
