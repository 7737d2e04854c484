"""The transparency log: batched appends, stored tiles, published checkpoints and proofs.

The tree head (size + compact range) lives in one row that each append transaction locks, so
appending costs O(log n) hashes per entry and never recomputes the tree. Each batch also
writes the C2SP tlog-tiles it changed (a few rows per batch), and every proof is computed
from O(log n) stored tiles. Checkpoints are signed by the checkpoint worker
(``registry.workers.checkpoints``) about once a second, not per request, and served with
the witnesses' cosignatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from attestation import merkle, tiles
from attestation.checkpoint import Checkpoint, sign_checkpoint
from attestation.errors import FormatError
from attestation.note import NoteSigner
from attestation.records import Record
from registry.db.models import LogState
from registry.errors import BadRequest, NotFound
from registry.repositories.log import LogRepository

__all__ = ["LogAppender", "LogEntryOut", "LogSigner", "PublishedCheckpoint", "TransparencyLog"]

HASH = 32
MAX_ENTRIES = 1000


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


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A stored signed checkpoint and the cosignature lines collected for it."""

    size: int
    root_hash: bytes
    note: str
    cosignatures: tuple[str, ...]

    @property
    def cosigned_note(self) -> str:
        """The signed note with every collected cosignature line appended."""
        return self.note + "".join(self.cosignatures)


def _pack(hashes: Sequence[bytes]) -> bytes:
    return b"".join(hashes)


def _unpack(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH] for i in range(0, len(blob), HASH)]


class LogAppender:
    """Appends entries; needs no signing key (checkpoints are the publisher's job)."""

    def __init__(self, session: Session) -> None:
        self.repo = LogRepository(session)
        self._locked: LogState | None = None

    def append_record(self, record: Record, at: datetime) -> int:
        """Append one registry record (its canonical JSON, :mod:`attestation.records`)."""
        return self.append(record.KIND, [record.to_json()], at)

    def append(self, kind: str, bodies: Sequence[bytes], at: datetime) -> int:
        """Append entries in one batch; returns the index of the first. Caller commits."""
        state = self._locked or self.repo.lock_state()
        tree = merkle.CompactRange.from_hashes(state.size, _unpack(state.compact_range))
        first = state.size
        rows = []
        leaves = []
        for offset, body in enumerate(bodies):
            leaf = merkle.leaf_hash(body)
            tree.append(leaf)
            leaves.append(leaf)
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
        edge = self.repo.tiles([tid for tid, _ in tiles.right_edge(first)])
        self.repo.put_tiles(tiles.extend_tiles(first, leaves, edge))
        state.size = tree.size
        state.compact_range = _pack(tree.to_hashes())
        state.root_hash = tree.root()
        state.updated_at = at
        self._locked = state
        return first

    def lock(self) -> int:
        """Take the append lock early in a transaction; returns the current size.

        The locked tree head is kept for :meth:`append` in the same transaction, so a batch
        takes the lock (and reads the head) once.
        """
        self._locked = self.repo.lock_state()
        return self._locked.size


class TransparencyLog(LogAppender):
    """The log with its identity: appends, checkpoints, proofs, tiles and entries."""

    def __init__(self, session: Session, signer: LogSigner) -> None:
        super().__init__(session)
        self.signer = signer

    def head(self) -> tuple[int, bytes]:
        """The committed tree size and root."""
        state = self.repo.state()
        if state is None:
            return 0, merkle.EMPTY_ROOT
        return state.size, bytes(state.root_hash)

    def checkpoint(self) -> Checkpoint:
        size, root = self.head()
        return Checkpoint(origin=self.signer.origin, size=size, root_hash=root)

    def sign_head(self) -> tuple[Checkpoint, str]:
        """Sign the current tree head (the publisher does this, not request handlers)."""
        cp = self.checkpoint()
        return cp, sign_checkpoint(cp, self.signer.signer)

    def published(self, size: int | None = None) -> PublishedCheckpoint | None:
        """The latest published checkpoint (or the one of ``size``) with its cosignatures."""
        row = self.repo.latest_checkpoint() if size is None else self.repo.checkpoint(size)
        if row is None:
            return None
        lines = tuple(c.line for c in self.repo.cosignatures(row.size))
        return PublishedCheckpoint(row.size, bytes(row.root_hash), row.note, lines)

    def signed_checkpoint(self) -> str:
        """The latest published checkpoint with its cosignatures.

        Before the publisher's first run the current head is signed on the spot (not stored).
        """
        published = self.published()
        if published is not None:
            return published.cosigned_note
        return self.sign_head()[1]

    def _check_size(self, tree_size: int) -> None:
        size, _ = self.head()
        if tree_size < 1 or tree_size > size:
            raise BadRequest(
                f"tree_size must be between 1 and the log size {size}", code="bad_tree_size"
            )

    def _hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        stored = self.repo.tiles(tiles.tiles_for_ranges(ranges))

        def tile(tid: tuple[int, int]) -> bytes:
            return stored.get(tid, b"")

        return [tiles.range_root(lo, hi, tile) for lo, hi in ranges]

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        self._check_size(tree_size)
        if not 0 <= index < tree_size:
            raise BadRequest(f"index {index} is not below tree_size {tree_size}", code="bad_index")
        return self._hashes(merkle.inclusion_proof_ranges(index, tree_size))

    def index_of(self, leaf_hash: bytes) -> int:
        index = self.repo.index_of_leaf(leaf_hash)
        if index is None:
            raise NotFound("no log entry has this leaf hash", code="unknown_leaf")
        return index

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        self._check_size(second)
        if not 1 <= first <= second:
            raise BadRequest("need 1 <= first <= second", code="bad_tree_size")
        return self._hashes(merkle.consistency_proof_ranges(first, second))

    def root_at(self, size: int) -> bytes:
        """The root hash of the tree of the first ``size`` entries, from stored tiles."""
        if size == 0:
            return merkle.EMPTY_ROOT
        self._check_size(size)
        return self._hashes([(0, size)])[0]

    def tile(self, level: int, index: int, width: int) -> bytes:
        """A tlog-tiles tile of the current tree; NotFound unless it exists at that width."""
        size, _ = self.head()
        have = size >> (tiles.TILE_HEIGHT * level)
        if index * tiles.TILE_WIDTH + width > have:
            raise NotFound("no such tile in this tree", code="unknown_tile")
        blob = self.repo.tiles([(level, index)]).get((level, index), b"")
        if len(blob) < width * HASH:
            raise NotFound("no such tile in this tree", code="unknown_tile")
        return blob[: width * HASH]

    def entry_bundle(self, index: int, width: int) -> bytes:
        """A tlog-tiles entry bundle; NotFound unless it exists at that width."""
        size, _ = self.head()
        start = index * tiles.TILE_WIDTH
        if start + width > size:
            raise NotFound("no such entry bundle in this tree", code="unknown_tile")
        bodies = [bytes(e.body) for e in self.repo.entries(start, start + width)]
        try:
            return tiles.bundle_entries(bodies)
        except FormatError as exc:
            # Kept by hand: an entry above 64 KiB has no entry bundle, so the tile path names
            # nothing (404), whatever the format error says.
            raise NotFound(str(exc), code="entry_too_large_for_bundle") from exc

    def entries(self, start: int, end: int) -> list[LogEntryOut]:
        size, _ = self.head()
        if not 0 <= start < end:
            raise BadRequest("need 0 <= start < end", code="bad_range")
        if end - start > MAX_ENTRIES:
            raise BadRequest(f"at most {MAX_ENTRIES} entries per request", code="bad_range")
        return [
            LogEntryOut(e.index, e.kind, bytes(e.leaf_hash), bytes(e.body), e.created_at)
            for e in self.repo.entries(start, min(end, size))
        ]
