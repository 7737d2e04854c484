"""C2SP tlog-tiles (c2sp.org/tlog-tiles): the log's stored tree, tile paths and entry bundles.

A tile at level ``L``, index ``N`` holds up to 256 hashes: at level 0 the leaf hashes
``N*256 ..``, at level ``L > 0`` the roots of the full level ``L-1`` tiles ``N*256 ..``. Every
hash of a complete subtree of the log can be recomputed from at most 128 hashes of one tile,
so a log that stores its tiles answers any proof from O(log n) tile reads and never rebuilds
the tree. :func:`extend_tiles` is the append step; :func:`range_root` the read step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from attestation.errors import FormatError, ProofError
from attestation.merkle import HASH_SIZE, node_hash, root_from_leaf_hashes

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileId",
    "bundle_entries",
    "entries_path",
    "extend_tiles",
    "parse_bundle",
    "parse_tile_path",
    "perfect_nodes",
    "range_root",
    "right_edge",
    "tile_path",
    "tiles_for_ranges",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_BUNDLE_ENTRY = 0xFFFF

TileId = tuple[int, int]  # (level, index)

_PATH_RE = re.compile(
    r"tile/(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)


def _encode_index(n: int) -> str:
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise FormatError(f"tile width {width} is not in 1..256")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``, e.g. ``tile/0/x001/x234/067.p/5``."""
    if not 0 <= level <= 63 or index < 0:
        raise FormatError(f"no tile at level {level}, index {index}")
    return f"tile/{level}/{_encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``."""
    if index < 0:
        raise FormatError(f"no entry bundle {index}")
    return f"tile/entries/{_encode_index(index)}{_suffix(width)}"


def parse_tile_path(path: str) -> tuple[int | None, int, int]:
    """Parse a tile or entry-bundle path into ``(level or None for entries, index, width)``.

    Only the canonical spelling is accepted (``tile/0/001``, never ``tile/0/x000/001``): one
    tile, one path, so caches and mirrors never hold two copies under two names.
    """
    m = _PATH_RE.fullmatch(path)
    if m is None:
        raise FormatError(f"not a tile path: {path!r}")
    level_s, width_s = m["level"], m["width"]
    width = TILE_WIDTH if width_s is None else int(width_s)
    if width_s is not None and width >= TILE_WIDTH:
        raise FormatError(f"partial tile width {width} is not below 256")
    level = None if level_s == "entries" else int(level_s)
    if level is not None and level > 63:
        raise FormatError(f"tile level {level} is above 63")
    index = int(m["index"].replace("x", "").replace("/", ""))
    canonical = entries_path(index, width) if level is None else tile_path(level, index, width)
    if path != canonical:
        raise FormatError(f"not a canonical tile path: {path!r} (canonical: {canonical!r})")
    return level, index, width


def right_edge(size: int) -> list[tuple[TileId, int]]:
    """The partial tiles of a tree of ``size`` leaves, as ``((level, index), width)``."""
    out = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        width = count % TILE_WIDTH
        if width:
            out.append(((level, count // TILE_WIDTH), width))
        level += 1
    return out


def _split_hashes(blob: bytes) -> list[bytes]:
    if len(blob) % HASH_SIZE:
        raise FormatError(f"tile of {len(blob)} bytes is not a whole number of hashes")
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def extend_tiles(
    old_size: int, leaf_hashes: Sequence[bytes], edge: Mapping[TileId, bytes]
) -> dict[TileId, bytes]:
    """Append leaves to a tiled tree; return every tile that changed, with its new contents.

    ``edge`` must hold the partial tiles of the tree of ``old_size`` (see :func:`right_edge`);
    full tiles never change. The cost is one hash per leaf plus 255 per completed tile.
    """
    current: list[list[bytes]] = []
    indexes: list[int] = []
    touched: dict[TileId, bytes] = {}
    dirty: set[int] = set()

    def level_tile(level: int) -> list[bytes]:
        while len(current) <= level:
            lvl = len(current)
            count = old_size >> (TILE_HEIGHT * lvl)
            index, width = divmod(count, TILE_WIDTH)
            hashes = _split_hashes(edge.get((lvl, index), b""))
            if len(hashes) < width:
                raise FormatError(
                    f"tile {lvl}/{index} has {len(hashes)} hashes, the tree needs {width}"
                )
            current.append(hashes[:width])
            indexes.append(index)
        return current[level]

    def push(level: int, h: bytes) -> None:
        while True:
            tile = level_tile(level)
            tile.append(h)
            dirty.add(level)
            if len(tile) < TILE_WIDTH:
                return
            touched[(level, indexes[level])] = b"".join(tile)
            h = root_from_leaf_hashes(tile)
            current[level] = []
            indexes[level] += 1
            dirty.discard(level)
            level += 1

    for leaf in leaf_hashes:
        if len(leaf) != HASH_SIZE:
            raise FormatError(f"leaf hash is {len(leaf)} bytes, want {HASH_SIZE}")
        push(0, leaf)
    for level in dirty:
        touched[(level, indexes[level])] = b"".join(current[level])
    return touched


def perfect_nodes(lo: int, hi: int) -> list[tuple[int, int]]:
    """Split ``[lo, hi)`` into maximal aligned perfect subtrees ``(height, index)``, left first."""
    if not 0 <= lo < hi:
        raise ProofError(f"empty or negative leaf range [{lo}, {hi})")
    nodes = []
    while lo < hi:
        height = (lo & -lo).bit_length() - 1 if lo else (hi - lo).bit_length() - 1
        while lo + (1 << height) > hi:
            height -= 1
        nodes.append((height, lo >> height))
        lo += 1 << height
    return nodes


def _node_tile(height: int, index: int) -> tuple[TileId, int, int]:
    level, rest = divmod(height, TILE_HEIGHT)
    first = index << rest  # index of the node's first hash within the level
    return (level, first // TILE_WIDTH), first % TILE_WIDTH, 1 << rest


def tiles_for_ranges(ranges: Iterable[tuple[int, int]]) -> set[TileId]:
    """The tiles needed to compute the tree hash of every range."""
    return {_node_tile(h, i)[0] for lo, hi in ranges for h, i in perfect_nodes(lo, hi)}


def range_root(lo: int, hi: int, tile: Callable[[TileId], bytes]) -> bytes:
    """The RFC 6962 hash of leaves ``[lo, hi)``, where ``lo`` is aligned to the range's split.

    That holds for every range of an RFC 6962 proof (see ``merkle.inclusion_proof_ranges``).
    ``tile`` returns a stored tile's bytes; :class:`ProofError` if one is too short.
    """
    hashes = []
    for height, index in perfect_nodes(lo, hi):
        tid, offset, count = _node_tile(height, index)
        blob = tile(tid)
        part = blob[offset * HASH_SIZE : (offset + count) * HASH_SIZE]
        if len(part) != count * HASH_SIZE:
            raise ProofError(f"tile {tid[0]}/{tid[1]} does not hold the hashes of [{lo}, {hi})")
        hashes.append(root_from_leaf_hashes(_split_hashes(part)))
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


def bundle_entries(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry as big-endian uint16 length || bytes."""
    out = bytearray()
    for e in entries:
        if len(e) > MAX_BUNDLE_ENTRY:
            raise FormatError(f"entry of {len(e)} bytes does not fit an entry bundle")
        out += len(e).to_bytes(2, "big") + e
    return bytes(out)


def parse_bundle(data: bytes) -> list[bytes]:
    """Split an entry bundle into its entries; :class:`FormatError` if truncated."""
    entries = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise FormatError("entry bundle ends inside a length prefix")
        n = int.from_bytes(data[pos : pos + 2], "big")
        if pos + 2 + n > len(data):
            raise FormatError("entry bundle ends inside an entry")
        entries.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return entries
