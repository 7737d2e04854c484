"""RFC 6962 Merkle trees against the transparency-dev/merkle and CT reference vectors."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from attestation.errors import FormatError, ProofError
from attestation.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

from .conftest import MERKLE_TESTDATA, load_json


@pytest.fixture(scope="module")
def hasher_vectors(vectors_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = load_json(vectors_dir / "rfc6962" / "hasher_vectors.json")
    return data


@pytest.fixture(scope="module")
def reference_leaves(hasher_vectors: dict[str, Any]) -> list[bytes]:
    return [leaf_hash(bytes.fromhex(h)) for h in hasher_vectors["tree"]["leaves_hex"]]


def _b64(v: str | None) -> bytes:
    return base64.b64decode(v or "")


def _proof(v: list[str] | None) -> list[bytes]:
    return [_b64(h) for h in v or []]


def reference_root(hashes: list[bytes]) -> bytes:
    """MTH straight from RFC 6962 section 2.1: split at the largest power of two below n."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def test_hasher_vectors(hasher_vectors: dict[str, Any]) -> None:
    empty, leaf_empty, leaf_l, node = (bytes.fromhex(v["hex"]) for v in hasher_vectors["hasher"])
    assert EMPTY_ROOT == empty == root_from_leaf_hashes([])
    assert leaf_hash(b"") == leaf_empty
    assert leaf_hash(b"L123456") == leaf_l
    assert node_hash(b"N123", b"N456") == node


def test_reference_tree_roots(
    hasher_vectors: dict[str, Any], reference_leaves: list[bytes]
) -> None:
    roots = hasher_vectors["tree"]["roots_hex_by_size"]
    assert len(roots) == 8
    for size, root_hex in roots.items():
        n = int(size)
        assert root_from_leaf_hashes(reference_leaves[:n]).hex() == root_hex
        cr = CompactRange()
        cr.extend(reference_leaves[:n])
        assert cr.root().hex() == root_hex


def test_inclusion_vector(inclusion_case: Path) -> None:
    v = load_json(inclusion_case)
    kwargs: dict[str, Any] = {
        "leaf_hash": _b64(v["leafHash"]),
        "index": v["leafIdx"],
        "tree_size": v["treeSize"],
        "proof": _proof(v["proof"]),
        "root": _b64(v["root"]),
    }
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(**kwargs)
    else:
        verify_inclusion(**kwargs)


def test_consistency_vector(consistency_case: Path) -> None:
    v = load_json(consistency_case)
    kwargs: dict[str, Any] = {
        "size1": v["size1"],
        "size2": v["size2"],
        "root1": _b64(v["root1"]),
        "root2": _b64(v["root2"]),
        "proof": _proof(v["proof"]),
    }
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(**kwargs)
    else:
        verify_consistency(**kwargs)


@pytest.mark.parametrize("case", ["1", "2", "3", "4"])
def test_generated_proofs_equal_vector_proofs(case: str, reference_leaves: list[bytes]) -> None:
    inc = load_json(MERKLE_TESTDATA / "inclusion" / case / "happy-path.json")
    tree = reference_leaves[: inc["treeSize"]]
    assert inclusion_proof(inc["leafIdx"], tree) == _proof(inc["proof"])
    assert tree[inc["leafIdx"]] == _b64(inc["leafHash"])
    con = load_json(MERKLE_TESTDATA / "consistency" / case / "happy-path.json")
    tree = reference_leaves[: con["size2"]]
    assert consistency_proof(con["size1"], tree) == _proof(con["proof"])
    assert root_from_leaf_hashes(tree[: con["size1"]]) == _b64(con["root1"])
    assert root_from_leaf_hashes(tree) == _b64(con["root2"])


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_root_matches_rfc_definition() -> None:
    leaves = _leaves(70)
    for n in range(71):
        assert root_from_leaf_hashes(leaves[:n]) == reference_root(leaves[:n])


def test_all_proofs_roundtrip_small_trees() -> None:
    leaves = _leaves(33)
    for n in range(1, 34):
        tree = leaves[:n]
        root = root_from_leaf_hashes(tree)
        for i in range(n):
            proof = inclusion_proof(i, tree)
            verify_inclusion(leaf_hash=tree[i], index=i, tree_size=n, proof=proof, root=root)
            with pytest.raises(ProofError):  # the same proof does not place another leaf there
                verify_inclusion(
                    leaf_hash=tree[(i + 1) % n] if n > 1 else leaf_hash(b"x"),
                    index=i,
                    tree_size=n,
                    proof=proof,
                    root=root,
                )
        for m in range(1, n + 1):
            proof = consistency_proof(m, tree)
            root1 = root_from_leaf_hashes(tree[:m])
            verify_consistency(size1=m, size2=n, root1=root1, root2=root, proof=proof)
            if m < n:
                with pytest.raises(ProofError):
                    verify_consistency(size1=m, size2=n, root1=root, root2=root1, proof=proof)


def test_proof_generation_bounds() -> None:
    leaves = _leaves(5)
    for bad in (-1, 5):
        with pytest.raises(ProofError):
            inclusion_proof(bad, leaves)
    for bad in (0, 6, -1):
        with pytest.raises(ProofError):
            consistency_proof(bad, leaves)
    assert consistency_proof(5, leaves) == []
    with pytest.raises(FormatError):
        root_from_leaf_hashes([b"short"])


def test_proof_hash_sizes_are_checked() -> None:
    leaves = _leaves(4)
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof(1, leaves)
    with pytest.raises(ProofError):
        verify_inclusion(
            leaf_hash=leaves[1],
            index=1,
            tree_size=4,
            proof=[*proof[:-1], proof[-1] + b"\x00"],
            root=root,
        )
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash=leaves[1], index=-1, tree_size=4, proof=proof, root=root)


def test_compact_range_incremental() -> None:
    leaves = _leaves(70)
    cr = CompactRange()
    assert cr.size == 0 and cr.root() == EMPTY_ROOT and cr.to_hashes() == []
    for n, h in enumerate(leaves, start=1):
        cr.append(h)
        assert cr.size == n
        assert cr.root() == root_from_leaf_hashes(leaves[:n])
        saved = cr.to_hashes()
        assert len(saved) == n.bit_count()
        restored = CompactRange.from_hashes(n, saved)
        assert restored.size == n and restored.root() == cr.root()
        assert restored.to_hashes() == saved
        # The restored range keeps growing like the original.
        restored.append(leaf_hash(b"next"))
        assert restored.root() == root_from_leaf_hashes([*leaves[:n], leaf_hash(b"next")])
    # to_hashes returns a copy.
    cr.to_hashes().clear()
    assert cr.size == 70 and cr.root() == root_from_leaf_hashes(leaves)


def test_compact_range_extend_and_errors() -> None:
    leaves = _leaves(11)
    cr = CompactRange()
    cr.extend(leaves[:4])
    cr.extend(iter(leaves[4:]))
    assert cr.root() == root_from_leaf_hashes(leaves)
    with pytest.raises(FormatError):
        CompactRange.from_hashes(11, cr.to_hashes()[:-1])
    with pytest.raises(FormatError):
        CompactRange.from_hashes(-1, [])
    with pytest.raises(FormatError):
        CompactRange.from_hashes(1, [b"short"])
    with pytest.raises(FormatError):
        cr.append(b"short")
    assert cr.size == 11
