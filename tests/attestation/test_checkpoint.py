"""C2SP checkpoints against a real Tessera log and a Rekor v2 (Tessera) staging bundle."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from attestation.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from attestation.errors import FormatError, KeyMismatchError, SignatureError
from attestation.keys import PrivateKey, PublicKey
from attestation.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from attestation.note import NoteSigner, NoteVerifier, signer_from_skey

from .conftest import TESSERA_LOG, load_json, require

Vectors = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def tessera_key(signed_note_vectors: Vectors) -> dict[str, Any]:
    return signed_note_vectors["tessera-testlog-key"]


def _checkpoint_file(n: int) -> bytes:
    return require(TESSERA_LOG / f"checkpoint.{n}").read_bytes()


def _tile_hashes(n: int) -> list[bytes]:
    data = require(TESSERA_LOG / "tile" / "0" / "000.p" / str(n)).read_bytes()
    assert len(data) == 32 * n
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def _bundle_entries(n: int) -> list[bytes]:
    data = require(TESSERA_LOG / "tile" / "entries" / "000.p" / str(n)).read_bytes()
    entries, i = [], 0
    while i < len(data):
        size = int.from_bytes(data[i : i + 2], "big")
        entries.append(data[i + 2 : i + 2 + size])
        i += 2 + size
    assert i == len(data)
    return entries


def test_tessera_checkpoint(tessera_key: dict[str, Any], tessera_size: int) -> None:
    n = tessera_size
    verifier = NoteVerifier.from_vkey(tessera_key["vkey"])
    note = _checkpoint_file(n)
    cp = verify_checkpoint(note, verifier)
    assert cp.origin == "example.com/log/testdata" == verifier.name
    assert cp.size == n
    assert cp.extensions == ()
    # Deterministic Ed25519: our signer reproduces the log's checkpoint byte for byte.
    assert sign_checkpoint(cp, signer_from_skey(tessera_key["skey"])).encode() == note
    if n == 0:
        assert cp.root_hash == EMPTY_ROOT
        return
    hashes = _tile_hashes(n)
    assert root_from_leaf_hashes(hashes) == cp.root_hash
    cr = CompactRange()
    cr.extend(hashes)
    assert cr.root() == cp.root_hash
    entries = _bundle_entries(n)
    assert [e.decode() for e in entries] == tessera_key["leaves_in_order"][:n]
    assert [leaf_hash(e) for e in entries] == hashes


def test_tessera_latest_checkpoint_is_15(tessera_key: dict[str, Any]) -> None:
    latest = require(TESSERA_LOG / "checkpoint").read_bytes()
    assert latest == _checkpoint_file(15)
    assert verify_checkpoint(latest, NoteVerifier.from_vkey(tessera_key["vkey"])).size == 15


def test_tessera_proofs_between_all_checkpoints(tessera_key: dict[str, Any]) -> None:
    verifier = NoteVerifier.from_vkey(tessera_key["vkey"])
    cps = [verify_checkpoint(_checkpoint_file(n), verifier) for n in range(16)]
    hashes = _tile_hashes(15)
    for n in range(1, 16):
        for i in range(n):
            verify_inclusion(
                leaf_hash=hashes[i],
                index=i,
                tree_size=n,
                proof=inclusion_proof(i, hashes[:n]),
                root=cps[n].root_hash,
            )
        for m in range(1, n + 1):
            verify_consistency(
                size1=m,
                size2=n,
                root1=cps[m].root_hash,
                root2=cps[n].root_hash,
                proof=consistency_proof(m, hashes[:n]),
            )


def test_rekor_v2_staging_bundle(vectors_dir: Path) -> None:
    d = vectors_dir / "sigstore-rekor-v2"
    trusted = load_json(d / "staging-trusted_root.json")
    bundle = load_json(d / "staging-rekor-v2.txt.sigstore.json")
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    proof = entry["inclusionProof"]
    origin = "log2025-alpha1.rekor.sigstage.dev"
    (tlog,) = [t for t in trusted["tlogs"] if t["publicKey"]["keyDetails"] == "PKIX_ED25519"]
    spki = base64.b64decode(tlog["publicKey"]["rawBytes"])
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(spki) + b"-----END PUBLIC KEY-----\n"
    verifier = NoteVerifier(origin, PublicKey.from_pem(pem))
    assert verifier.verifier_key() == (
        "log2025-alpha1.rekor.sigstage.dev+f30d5a99+AT5/gERB6AWme8IEtcwaqcZi0hp8ocV4+JRcUnVlQfKP"
    )
    # Rekor's logId is the full hash whose first four bytes are the note key id.
    log_id = base64.b64decode(entry["logId"]["keyId"])
    assert log_id == hashlib.sha256(origin.encode() + b"\n\x01" + verifier.public_key.raw).digest()
    assert log_id[:4] == verifier.key_id

    cp = verify_checkpoint(proof["checkpoint"]["envelope"], verifier)
    assert cp.size == int(proof["treeSize"]) == 646
    assert cp.root_hash == base64.b64decode(proof["rootHash"])
    verify_inclusion(
        leaf_hash=leaf_hash(base64.b64decode(entry["canonicalizedBody"])),
        index=int(proof["logIndex"]),
        tree_size=cp.size,
        proof=[base64.b64decode(h) for h in proof["hashes"]],
        root=cp.root_hash,
    )


ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()


def test_text_roundtrip() -> None:
    cp = Checkpoint("example.com/log", 20852163, ROOT, ("ext one", "ext two"))
    text = cp.to_text()
    assert text == f"example.com/log\n20852163\n{ROOT_B64}\next one\next two\n"
    assert Checkpoint.from_text(text) == cp
    assert Checkpoint.from_text(f"o\n0\n{ROOT_B64}\n") == Checkpoint("o", 0, ROOT)


@pytest.mark.parametrize(
    "text",
    [
        f"o\n01\n{ROOT_B64}\n",
        f"o\n-1\n{ROOT_B64}\n",
        f"o\n 1\n{ROOT_B64}\n",
        f"o\n1.0\n{ROOT_B64}\n",
        f"o\n\uff11\n{ROOT_B64}\n",
        f"o\n1\n{ROOT_B64}",  # no final newline
        f"o\n1\n{ROOT_B64}\n\n",  # empty extension line
        f"\n1\n{ROOT_B64}\n",  # empty origin
        "o\n1\n",
        "o\n1\nAAAA\n",  # 3-byte root
        f"o\n1\n{ROOT_B64[:-1]}\n",
        "",
    ],
)
def test_from_text_rejects(text: str) -> None:
    with pytest.raises(FormatError):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    "args",
    [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("o", -1, ROOT),
        ("o", True, ROOT),
        ("o", 1, b"x"),
        ("o", 1, ROOT, ("",)),
    ],
)
def test_checkpoint_validates_itself(args: tuple[Any, ...]) -> None:
    with pytest.raises(FormatError):
        Checkpoint(*args)


def test_sign_and_verify(chip_key: PrivateKey, other_key: PrivateKey) -> None:
    signer = NoteSigner("example.com/log", chip_key)
    cp = Checkpoint("example.com/log", 3, ROOT)
    note = sign_checkpoint(cp, signer)
    assert verify_checkpoint(note, signer.verifier()) == cp
    assert verify_checkpoint(note.encode(), signer.verifier()) == cp
    # A witness cosignature from an unknown key is ignored.
    witness = NoteSigner("witness.example", other_key)
    cosigned = note + witness.signature_line(cp.to_text())
    assert verify_checkpoint(cosigned, signer.verifier()) == cp
    # Wrong key under the right name: unknown signer, so no known signature.
    with pytest.raises(SignatureError):
        verify_checkpoint(note, NoteSigner("example.com/log", other_key).verifier())
    with pytest.raises(SignatureError):
        verify_checkpoint(note.replace("\n3\n", "\n4\n"), signer.verifier())
    # The log refuses to sign another origin, and verifiers refuse a checkpoint whose origin
    # is not the key's name even when the signature is good.
    other_origin = Checkpoint("example.com/other", 3, ROOT)
    with pytest.raises(KeyMismatchError):
        sign_checkpoint(other_origin, signer)
    with pytest.raises(KeyMismatchError):
        verify_checkpoint(signer.sign(other_origin.to_text()), signer.verifier())
    # Signed note whose text is not a checkpoint.
    with pytest.raises(FormatError):
        verify_checkpoint(signer.sign("example.com/log\nnot a size\n"), signer.verifier())
