"""C2SP tlog-proof v1 (c2sp.org/tlog-proof): an offline-verifiable inclusion proof.

::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <N>
    <base64 hash>...          (audit path, from the leaf's sibling up)

    <checkpoint, verbatim, with its signatures and cosignatures>
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from attestation import merkle
from attestation.checkpoint import Checkpoint, verify_checkpoint
from attestation.cosignature import Cosignature, CosignatureVerifier, verify_cosignatures
from attestation.errors import FormatError, SignatureError
from attestation.keys import b64decode_strict
from attestation.note import NoteVerifier

__all__ = ["HEADER", "TlogProof", "format_proof", "parse_proof", "verify_proof"]

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True, slots=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None


def format_proof(p: TlogProof) -> str:
    lines = [HEADER]
    if p.extra is not None:
        lines.append("extra " + base64.b64encode(p.extra).decode("ascii"))
    lines.append(f"index {p.index}")
    lines.extend(base64.b64encode(h).decode("ascii") for h in p.proof)
    return "\n".join(lines) + "\n\n" + p.checkpoint


def parse_proof(text: str) -> TlogProof:
    """Parse a tlog-proof; :class:`FormatError` on any deviation."""
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise FormatError("tlog-proof has no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise FormatError(f"tlog-proof must start with {HEADER}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = b64decode_strict(lines[pos][6:], "tlog-proof extra")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise FormatError("tlog-proof has no index line")
    idx = lines[pos][6:]
    if not idx.isascii() or not idx.isdigit() or (len(idx) > 1 and idx[0] == "0"):
        raise FormatError(f"tlog-proof index {idx!r} is not a canonical decimal")
    hashes = tuple(b64decode_strict(h, "tlog-proof hash") for h in lines[pos + 1 :])
    if any(len(h) != merkle.HASH_SIZE for h in hashes):
        raise FormatError("tlog-proof hashes must be 32 bytes")
    return TlogProof(int(idx), hashes, checkpoint, extra)


def verify_proof(
    text: str,
    leaf_hash: bytes,
    log: NoteVerifier,
    witnesses: Sequence[CosignatureVerifier] = (),
    quorum: int = 0,
) -> tuple[Checkpoint, list[Cosignature]]:
    """Verify a tlog-proof for ``leaf_hash``: log signature, ``quorum`` witnesses, inclusion.

    Raises :class:`FormatError`, :class:`SignatureError` (too few cosignatures included) or
    :class:`~attestation.errors.ProofError`.
    """
    p = parse_proof(text)
    cp = verify_checkpoint(p.checkpoint, log)
    _, cosigs = verify_cosignatures(p.checkpoint, witnesses)
    if len(cosigs) < quorum:
        raise SignatureError(f"{len(cosigs)} witness cosignatures, the policy needs {quorum}")
    merkle.verify_inclusion(
        leaf_hash=leaf_hash, index=p.index, tree_size=cp.size, proof=p.proof, root=cp.root_hash
    )
    return cp, cosigs
