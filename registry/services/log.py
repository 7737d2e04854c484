"""The transparency log: sequenced appends, integrated tree, stored tiles, checkpoints, proofs.

Sequence first, integrate after (issue 15, as Tessera does). An append takes the sequencing
lock (one row, ``log_sequence``), gives its entries the next indexes and stores their exact
bytes and leaf hashes; its transaction's commit makes them durable, and that is all a writer
waits for. :func:`integrate` (run by ``registry.workers.integrator``, one process at a time)
folds the sequenced entries into the tree afterwards: the tree head (size + compact range, in
``log_state``, another row with its own lock) costs O(log n) hashes per entry, the C2SP
tlog-tiles it changed are rewritten, and the integrator then has the checkpoint publisher
(``registry.workers.checkpoints``) sign a checkpoint. Every proof, tile and checkpoint is of the
integrated tree and computed from O(log n) stored tiles; an entry sequenced but not yet
integrated is in no checkpoint.
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
from registry.db.models import LogSequence
from registry.errors import BadRequest, NotFound
from registry.repositories.log import LogRepository

__all__ = [
    "LogAppender",
    "LogEntryOut",
    "LogSigner",
    "PublishedCheckpoint",
    "TransparencyLog",
    "integrate",
]

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
    """Sequences entries; needs no signing key (checkpoints are the integrator's job).

    Appending gives each entry its index and stores its exact bytes and leaf hash (the
    sequenced pool); the caller's commit makes them durable. The tree, its tiles and the
    checkpoints follow asynchronously (:func:`integrate`, run by
    ``registry.workers.integrator``).
    """

    def __init__(self, session: Session) -> None:
        self.repo = LogRepository(session)
        self._locked: LogSequence | None = None

    def append_record(self, record: Record, at: datetime) -> int:
        """Append one registry record (its canonical JSON, :mod:`attestation.records`)."""
        return self.append(record.KIND, [record.to_json()], at)

    def append(
        self,
        kind: str,
        bodies: Sequence[bytes],
        at: datetime,
        leaves: Sequence[bytes] | None = None,
    ) -> int:
        """Sequence entries in one batch; returns the index of the first. Caller commits.

        ``leaves``: their leaf hashes if the caller computed them already (ingest does, on the
        request threads, outside the lock).
        """
        seq = self._locked or self.repo.lock_sequence()
        first = seq.size
        if leaves is None:
            leaves = [merkle.leaf_hash(body) for body in bodies]
        self.repo.insert_entries(
            [
                {
                    "index": first + offset,
                    "kind": kind,
                    "leaf_hash": leaf,
                    "body": body,
                    "created_at": at,
                }
                for offset, (body, leaf) in enumerate(zip(bodies, leaves, strict=True))
            ]
        )
        seq.size = first + len(bodies)
        seq.updated_at = at
        self._locked = seq
        return first

    def lock_size(self) -> int:
        """The sequenced size this transaction leaves (it holds the sequencing lock)."""
        seq = self._locked or self.repo.lock_sequence()
        self._locked = seq
        return seq.size

    def lock(self) -> int:
        """Take the sequencing lock early in a transaction; returns the sequenced size.

        The locked row is kept for :meth:`append` in the same transaction, so a batch takes
        the lock (and reads the size) once.
        """
        self._locked = self.repo.lock_sequence()
        return self._locked.size


def integrate(session: Session, at: datetime, limit: int = 1_000_000) -> tuple[int, int]:
    """Fold sequenced entries into the tree: compact range, root, C2SP tiles, tree size.

    Takes the tree head's lock (the sequencer's lock is another row: appends go on), reads the
    leaf hashes of at most ``limit`` entries past the integrated size, and moves the head. The
    caller commits. Returns the integrated size before and after.
    """
    repo = LogRepository(session)
    state = repo.lock_state()
    first = state.size
    end = min(repo.sequenced_size(), first + limit)
    if end <= first:
        return first, first
    leaves = repo.leaf_hashes_between(first, end)
    if len(leaves) != end - first:
        msg = f"log entries [{first}, {end}) are not all stored ({len(leaves)} found)"
        raise RuntimeError(msg)
    tree = merkle.CompactRange.from_hashes(first, _unpack(state.compact_range))
    for leaf in leaves:
        tree.append(leaf)
    edge = repo.tiles([tid for tid, _ in tiles.right_edge(first)])
    repo.put_tiles(tiles.extend_tiles(first, leaves, edge))
    state.size = tree.size
    state.compact_range = _pack(tree.to_hashes())
    state.root_hash = tree.root()
    state.updated_at = at
    return first, end


class TransparencyLog(LogAppender):
    """The log with its identity: appends, checkpoints, proofs, tiles and entries."""

    def __init__(self, session: Session, signer: LogSigner) -> None:
        super().__init__(session)
        self.signer = signer

    def head(self) -> tuple[int, bytes]:
        """The integrated tree's size and root (what checkpoints, proofs and tiles are of)."""
        state = self.repo.state()
        if state is None:
            return 0, merkle.EMPTY_ROOT
        return state.size, bytes(state.root_hash)

    def sequenced_size(self) -> int:
        """How many entries have an index (committed, integrated or not): at least head()."""
        return self.repo.sequenced_size()

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
        """Stored entries in ``[start, end)``: sequenced ones too (their index and bytes are
        final once committed), though only those below a checkpoint's size are provable."""
        size = self.sequenced_size()
        if not 0 <= start < end:
            raise BadRequest("need 0 <= start < end", code="bad_range")
        if end - start > MAX_ENTRIES:
            raise BadRequest(f"at most {MAX_ENTRIES} entries per request", code="bad_range")
        return [
            LogEntryOut(e.index, e.kind, bytes(e.leaf_hash), bytes(e.body), e.created_at)
            for e in self.repo.entries(start, min(end, size))
        ]
