"""RFC 6962 / RFC 9162 Merkle trees: hashing, proofs, proof verification, compact ranges.

Verification follows transparency-dev/merkle (``proof/verify.go``) exactly, including its
edge cases, so that this log and Go-based monitors and witnesses agree on every proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from attestation.errors import FormatError, ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "consistency_proof",
    "consistency_proof_ranges",
    "inclusion_proof",
    "inclusion_proof_ranges",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``; the prefix keeps leaves and inner nodes apart."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise FormatError(f"{what}[{i}] is {len(h)} bytes, want {HASH_SIZE}")


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The RFC 6962 tree head over ``hashes`` (``EMPTY_ROOT`` for none).

    Pairing left to right and promoting an odd last node one level up yields exactly the
    RFC 6962 split-at-largest-power-of-two tree, in O(n) without recursion.
    """
    _check_hashes(hashes, "leaf hash")
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _path(m: int, hashes: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    # RFC 9162 2.1.3.1 PATH(m, D[lo:hi]); proofs are listed from the leaf upwards.
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < k:
        return [*_path(m, hashes, lo, lo + k), root_from_leaf_hashes(hashes[lo + k : hi])]
    return [*_path(m - k, hashes, lo + k, hi), root_from_leaf_hashes(hashes[lo : lo + k])]


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree made of all of ``hashes``."""
    if not 0 <= index < len(hashes):
        raise ProofError(f"leaf index {index} outside tree of size {len(hashes)}")
    _check_hashes(hashes, "leaf hash")
    return _path(index, hashes, 0, len(hashes))


def _subproof(m: int, hashes: Sequence[bytes], lo: int, hi: int, complete: bool) -> list[bytes]:
    # RFC 9162 2.1.4.1 SUBPROOF(m, D[lo:hi], b).
    n = hi - lo
    if m == n:
        return [] if complete else [root_from_leaf_hashes(hashes[lo:hi])]
    k = _split(n)
    if m <= k:
        return [
            *_subproof(m, hashes, lo, lo + k, complete),
            root_from_leaf_hashes(hashes[lo + k : hi]),
        ]
    return [
        *_subproof(m - k, hashes, lo + k, hi, False),
        root_from_leaf_hashes(hashes[lo : lo + k]),
    ]


def consistency_proof(size1: int, hashes: Sequence[bytes]) -> list[bytes]:
    """Consistency proof from the tree of the first ``size1`` leaves to the whole of ``hashes``.

    ``size1`` must be in ``[1, len(hashes)]``: a proof from the empty tree proves nothing and
    :func:`verify_consistency` rejects it, so it is not produced either.
    """
    if not 0 < size1 <= len(hashes):
        raise ProofError(f"no consistency proof from size {size1} to size {len(hashes)}")
    _check_hashes(hashes, "leaf hash")
    return _subproof(size1, hashes, 0, len(hashes), True)


def _path_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < k:
        return [*_path_ranges(m, lo, lo + k), (lo + k, hi)]
    return [*_path_ranges(m - k, lo + k, hi), (lo, lo + k)]


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[lo, hi)`` whose tree hashes make the audit path of ``index``.

    ``inclusion_proof(index, hashes)[i]`` is the RFC 6962 hash of ``hashes[lo:hi]`` for the
    i-th range: a log that stores subtree hashes (tiles) answers proofs from this shape alone.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} outside tree of size {size}")
    return _path_ranges(index, 0, size)


def _subproof_ranges(m: int, lo: int, hi: int, complete: bool) -> list[tuple[int, int]]:
    n = hi - lo
    if m == n:
        return [] if complete else [(lo, hi)]
    k = _split(n)
    if m <= k:
        return [*_subproof_ranges(m, lo, lo + k, complete), (lo + k, hi)]
    return [*_subproof_ranges(m - k, lo + k, hi, False), (lo, lo + k)]


def consistency_proof_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose tree hashes make the consistency proof from size1 to size2."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    return _subproof_ranges(size1, 0, size2, True)


def _inclusion_shape(index: int, size: int) -> tuple[int, int]:
    # Split of an audit path into the part inside the perfect subtree holding ``index`` and
    # the "border" hashes of the right edge above it (verify.go decompInclProof).
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ProofError(f"proof[{i}] is not a {HASH_SIZE}-byte hash")


def verify_inclusion(
    *, leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree with ``root``; else ProofError."""
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} outside tree of size {tree_size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf_hash)} bytes, want {HASH_SIZE}")
    _check_proof(proof)
    inner, border = _inclusion_shape(index, tree_size)
    if len(proof) != inner + border:
        raise ProofError(f"inclusion proof has {len(proof)} hashes, want {inner + border}")
    calculated = _chain_border_right(_chain_inner(leaf_hash, proof[:inner], index), proof[inner:])
    if calculated != root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    *, size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (size2, root2) extends the tree (size1, root1); else ProofError.

    As in transparency-dev/merkle, ``size1 == 0`` is always an error (even 0 -> 0), and equal
    sizes need an empty proof and equal roots.
    """
    if size1 <= 0:
        raise ProofError("consistency proof from the empty tree is meaningless")
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) < size1 ({size1})")
    if size1 == size2:
        if proof:
            raise ProofError("size1 == size2 but the proof is not empty")
        if root1 != root2:
            raise ProofError("equal tree sizes with different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_proof(proof)

    inner, border = _inclusion_shape(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zeros of size1
    inner -= shift
    # The proof starts with the root of the size-2^shift subtree, unless size1 is exactly that
    # subtree and the verifier already holds it as root1.
    if size1 == 1 << shift:
        seed, rest = root1, proof
    else:
        seed, rest = proof[0], proof[1:]
    if len(rest) != inner + border:
        want = len(proof) - len(rest) + inner + border
        raise ProofError(f"consistency proof has {len(proof)} hashes, want {want}")
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if hash1 != root1:
        raise ProofError("consistency proof does not lead to root1")
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if hash2 != root2:
        raise ProofError("consistency proof does not lead to root2")


class CompactRange:
    """Incremental tree state: the roots of the perfect subtrees that make up ``[0, size)``.

    Appending is O(log n) amortised and the state is ``popcount(size)`` hashes, which is what
    a log persists instead of recomputing its root from every leaf.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # left to right, largest subtree first

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Restore a range saved with :meth:`to_hashes`; :class:`FormatError` if inconsistent."""
        if size < 0 or len(hashes) != size.bit_count():
            raise FormatError(f"a compact range of size {size} has {size.bit_count()} hashes")
        _check_hashes(hashes, "compact range hash")
        cr = cls()
        cr._size = size
        cr._hashes = list(hashes)
        return cr

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def to_hashes(self) -> list[bytes]:
        """The subtree roots, largest first (a copy), for :meth:`from_hashes`."""
        return list(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash."""
        if len(leaf_hash) != HASH_SIZE:
            raise FormatError(f"leaf hash is {len(leaf_hash)} bytes, want {HASH_SIZE}")
        hashes = self._hashes
        hashes.append(leaf_hash)
        # Each trailing 1 bit of the old size is a same-sized subtree to merge with.
        size = self._size
        while size & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            size >>= 1
        self._size += 1

    def extend(self, hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for h in hashes:
            self.append(h)

    def root(self) -> bytes:
        """The RFC 6962 root of the tree of all leaves appended so far."""
        if not self._hashes:
            return EMPTY_ROOT
        it = reversed(self._hashes)
        root = next(it)
        for h in it:
            root = node_hash(h, root)
        return root
