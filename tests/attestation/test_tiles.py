"""tlog-tiles: paths, tile building against the Tessera test log, proofs from tiles."""

from __future__ import annotations

import hashlib
import random

import pytest

from attestation import merkle, tiles
from attestation.checkpoint import Checkpoint
from attestation.errors import FormatError

from .conftest import TESSERA_LOG, require


def leaves(n: int, salt: str = "") -> list[bytes]:
    return [merkle.leaf_hash(f"{salt}{i}".encode()) for i in range(n)]


def build(hashes: list[bytes], batches: list[int]) -> dict[tiles.TileId, bytes]:
    """Append ``hashes`` in batches of the given sizes, keeping only what extend_tiles wrote."""
    store: dict[tiles.TileId, bytes] = {}
    size = 0
    for n in batches:
        edge = {tid: store[tid] for tid, _ in tiles.right_edge(size) if tid in store}
        store.update(tiles.extend_tiles(size, hashes[size : size + n], edge))
        size += n
    assert size == len(hashes)
    return store


def test_paths_follow_the_spec() -> None:
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(1, 0, 17) == "tile/1/000.p/17"
    assert tiles.entries_path(5, 3) == "tile/entries/005.p/3"
    assert tiles.parse_tile_path("tile/0/x001/x234/067") == (0, 1234067, 256)
    assert tiles.parse_tile_path("tile/entries/000.p/15") == (None, 0, 15)
    non_canonical = ("tile/0/x000/001", "tile/0/x000/x001/234", "tile/entries/x000/000.p/3")
    for bad in (
        "tile/0/1",
        "tile/00/000",
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/05",
        "tile/64/000",
        *non_canonical,
    ):
        with pytest.raises(FormatError):
            tiles.parse_tile_path(bad)


def test_right_edge_matches_the_spec_example() -> None:
    # "a tree of size 70,000: ... one partial level 0 tile of width 112, ... one partial level 1
    # tile of width 17, and one partial level 2 tile of width 1."
    assert tiles.right_edge(70_000) == [((0, 273), 112), ((1, 1), 17), ((2, 0), 1)]
    assert tiles.right_edge(256) == [((1, 0), 1)]
    assert tiles.right_edge(0) == []


def test_tessera_test_log_tiles_and_bundles(tessera_size: int) -> None:
    """Our tiles and entry bundles equal Tessera's byte for byte, and hash to its checkpoints."""
    if tessera_size == 0:
        return
    bundle = require(TESSERA_LOG / "tile" / "entries" / "000.p" / str(tessera_size)).read_bytes()
    entries = tiles.parse_bundle(bundle)
    assert tiles.bundle_entries(entries) == bundle
    hashes = [merkle.leaf_hash(e) for e in entries]
    store = build(hashes, [1] * tessera_size)
    tile = require(TESSERA_LOG / "tile" / "0" / "000.p" / str(tessera_size)).read_bytes()
    assert store[(0, 0)] == tile
    text = require(TESSERA_LOG / f"checkpoint.{tessera_size}").read_text()
    cp = Checkpoint.from_text(text[: text.index("\n\n") + 1])
    assert tiles.range_root(0, tessera_size, store.__getitem__) == cp.root_hash


@pytest.mark.parametrize("batches", [[1] * 600, [700], [255, 1, 256, 300, 70_000 - 812]])
def test_tiles_from_any_batching_agree(batches: list[int]) -> None:
    hashes = leaves(sum(batches))
    store = build(hashes, batches)
    one_shot = build(hashes, [len(hashes)])
    assert store == one_shot
    assert tiles.range_root(0, len(hashes), store.__getitem__) == merkle.root_from_leaf_hashes(
        hashes
    )


def test_proofs_from_tiles_equal_proofs_from_leaves() -> None:
    hashes = leaves(66_000, "p")
    store = build(hashes, [66_000])
    rng = random.Random(7)
    sizes = [1, 2, 3, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 66_000]
    sizes += [rng.randrange(1, 66_000) for _ in range(6)]
    for size in sizes:
        prefix = hashes[:size]
        for index in {0, size - 1, rng.randrange(size)}:
            want = merkle.inclusion_proof(index, prefix)
            ranges = merkle.inclusion_proof_ranges(index, size)
            got = [tiles.range_root(lo, hi, store.__getitem__) for lo, hi in ranges]
            assert got == want, (index, size)
        first = rng.randrange(1, size + 1)
        want = merkle.consistency_proof(first, prefix)
        got = [
            tiles.range_root(lo, hi, store.__getitem__)
            for lo, hi in merkle.consistency_proof_ranges(first, size)
        ]
        assert got == want, (first, size)
    # a handful of tile reads per proof, never the whole tree
    ranges = merkle.inclusion_proof_ranges(12_345, 66_000)
    assert len(tiles.tiles_for_ranges(ranges)) <= 6


def test_short_or_broken_tiles_are_refused() -> None:
    with pytest.raises(FormatError):
        tiles.extend_tiles(3, leaves(1), {(0, 0): hashlib.sha256(b"").digest()})
    with pytest.raises(FormatError):
        tiles.parse_bundle(b"\x00\x05abc")
    with pytest.raises(FormatError):
        tiles.bundle_entries([b"x" * 70_000])
