"""tlog-cosignature v1, tlog-witness add-checkpoint decisions, and tlog-proof."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from attestation import merkle
from attestation.checkpoint import Checkpoint, sign_checkpoint
from attestation.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    cosigned_message,
    verify_cosignatures,
)
from attestation.errors import FormatError, ProofError, SignatureError
from attestation.keys import PrivateKey
from attestation.note import NoteSigner, open_note
from attestation.tlog_proof import TlogProof, format_proof, parse_proof, verify_proof
from attestation.tlog_witness import (
    CosignedHead,
    WitnessRefusal,
    add_checkpoint,
    format_add_checkpoint,
    parse_add_checkpoint,
)

from .conftest import VECTORS_DIR, require

SPEC = VECTORS_DIR / "c2sp-spec-examples"
ORIGIN = "example.com/log"


def key(label: str) -> PrivateKey:
    return PrivateKey.from_seed(hashlib.sha256(label.encode()).digest())


LOG = NoteSigner(ORIGIN, key("log"))
WITNESS = CosignatureSigner("witness.example/w1", key("w1"))
LEAVES = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(40)]


def checkpoint(size: int, leaves: list[bytes] = LEAVES, signer: NoteSigner = LOG) -> str:
    root = merkle.root_from_leaf_hashes(leaves[:size])
    return sign_checkpoint(Checkpoint(ORIGIN, size, root), signer)


def test_spec_example_cosignature_line_layout() -> None:
    """The spec's example cosignature: key ID || u64 timestamp (1679315147) || 64-byte sig."""
    text = require(SPEC / "tlog-cosignature.md").read_text()
    m = re.search(r"^\u2014 witness\.example\.com/w1 (\S+)$", text, re.M)
    assert m is not None
    raw = base64.b64decode(m.group(1))
    assert len(raw) == 4 + 8 + 64
    assert int.from_bytes(raw[4:12], "big") == 1679315147
    assert "time 1679315147\n" in text
    msg = cosigned_message("example.com/behind-the-sofa\n20852163\nCsUY=\n", 1679315147)
    assert msg.startswith(b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n")


def test_cosignature_round_trip_and_key_id() -> None:
    pub = WITNESS.verifier().public_key.raw
    want_id = hashlib.sha256(b"witness.example/w1\n\x04" + pub).digest()[:4]
    vkey = WITNESS.verifier_key()
    assert vkey.split("+")[1] == want_id.hex()
    verifier = CosignatureVerifier.from_vkey(vkey)
    note = checkpoint(5)
    text, _ = open_note(note, [LOG.verifier()])
    line = WITNESS.cosign(text, 1_700_000_000)
    _, found = verify_cosignatures(note + line, [verifier])
    assert [(c.name, c.timestamp) for c in found] == [("witness.example/w1", 1_700_000_000)]
    # A note verifier ignores the cosignature (type 0x04 key ID differs from 0x01).
    assert open_note(note + line, [LOG.verifier()])[1] == [LOG.verifier()]
    # A tampered timestamp breaks it.
    raw = bytearray(base64.b64decode(line.split()[-1]))
    raw[11] ^= 1
    bad = f"\u2014 witness.example/w1 {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(SignatureError):
        verify_cosignatures(note + bad, [verifier])
    with pytest.raises(FormatError):
        CosignatureVerifier.from_vkey(LOG.verifier_key())  # a 0x01 note key is not a cosigner
    with pytest.raises(FormatError):
        WITNESS.cosign(text, 0)


def decide(body: bytes, heads: dict[str, CosignedHead]) -> tuple[CosignedHead, str]:
    return add_checkpoint(
        parse_add_checkpoint(body), {ORIGIN: LOG.verifier()}, heads, WITNESS, 1_700_000_000
    )


def status(body: bytes, heads: dict[str, CosignedHead]) -> int:
    with pytest.raises(WitnessRefusal) as exc:
        decide(body, heads)
    return exc.value.status


def test_witness_accepts_consistent_growth_and_refuses_the_rest() -> None:
    head, line = decide(format_add_checkpoint(0, [], checkpoint(8)), {})
    assert head.size == 8 and line.startswith("\u2014 witness.example/w1 ")
    heads = {ORIGIN: head}
    proof = merkle.consistency_proof(8, LEAVES[:20])
    head20, _ = decide(format_add_checkpoint(8, proof, checkpoint(20)), heads)
    assert head20.size == 20

    # stale old size: 409 with the witness's size as text/x.tlog.size
    with pytest.raises(WitnessRefusal) as exc:
        decide(format_add_checkpoint(0, [], checkpoint(20)), heads)
    assert (exc.value.status, exc.value.body, exc.value.content_type) == (
        409,
        "8\n",
        "text/x.tlog.size",
    )
    # a fork: same old size, a different history
    forked = [merkle.leaf_hash(b"other"), *LEAVES[1:]]
    fork_proof = merkle.consistency_proof(8, forked[:20])
    assert status(format_add_checkpoint(8, fork_proof, checkpoint(20, forked)), heads) == 422
    # a bad proof
    assert status(format_add_checkpoint(8, proof[:-1], checkpoint(20)), heads) == 422
    # old size above the checkpoint size
    assert status(format_add_checkpoint(30, [], checkpoint(20)), heads) == 400
    # unknown origin, bad signature
    other = NoteSigner("example.com/other", key("other"))
    foreign = sign_checkpoint(Checkpoint("example.com/other", 1, LEAVES[0]), other)
    assert status(format_add_checkpoint(0, [], foreign), heads) == 404
    impostor = checkpoint(20, signer=NoteSigner(ORIGIN, key("impostor")))
    assert status(format_add_checkpoint(8, proof, impostor), heads) == 403
    # proof with old size 0, empty tree with a wrong root, malformed bodies
    assert status(format_add_checkpoint(0, proof, checkpoint(20)), {}) == 422
    empty_bad = sign_checkpoint(Checkpoint(ORIGIN, 0, LEAVES[0]), LOG)
    assert status(format_add_checkpoint(0, [], empty_bad), {}) == 422
    for body in (b"old 01\n\n" + checkpoint(8).encode(), b"new 0\n\nx", b"old 0\n"):
        assert status(body, {}) == 400
    # the same size again with the same root is fine (idempotent)
    same, _ = decide(format_add_checkpoint(20, [], checkpoint(20)), {ORIGIN: head20})
    assert same.size == 20


def test_tlog_proof_round_trip() -> None:
    note = checkpoint(13)
    text, _ = open_note(note, [LOG.verifier()])
    cosigned = note + WITNESS.cosign(text, 1_700_000_000)
    proof = TlogProof(6, tuple(merkle.inclusion_proof(6, LEAVES[:13])), cosigned, b"ctx")
    encoded = format_proof(proof)
    assert encoded.startswith("c2sp.org/tlog-proof@v1\nextra Y3R4\nindex 6\n")
    assert parse_proof(encoded) == proof
    cp, cosigs = verify_proof(encoded, LEAVES[6], LOG.verifier(), [WITNESS.verifier()], 1)
    assert cp.size == 13 and len(cosigs) == 1
    with pytest.raises(ProofError):
        verify_proof(encoded, LEAVES[7], LOG.verifier())
    with pytest.raises(SignatureError):
        verify_proof(
            format_proof(TlogProof(6, proof.proof, note)),
            LEAVES[6],
            LOG.verifier(),
            [WITNESS.verifier()],
            1,
        )


def test_spec_example_tlog_proof_parses() -> None:
    text = require(SPEC / "tlog-proof.md").read_text()
    block = text.split("```\n")[1]
    parsed = parse_proof(block.replace("[...]", ""))
    assert parsed.index == 73894 and len(parsed.proof) == 5
    assert parsed.checkpoint.startswith("example.com/fancylog\n109482\n")
