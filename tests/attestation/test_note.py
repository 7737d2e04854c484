"""C2SP signed notes against the x/mod, C2SP and transparency-dev/formats vectors."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from attestation.errors import FormatError, SignatureError
from attestation.keys import PrivateKey, PublicKey
from attestation.note import NoteSigner, NoteVerifier, open_note, signer_from_skey

Vectors = dict[str, dict[str, Any]]

SINGLE_KEY_VECTORS = [
    "go-xmod-peterneumann",
    "c2sp-signed-note-example",
    "sumdb-real-tree-head",
]


@pytest.mark.parametrize("vid", SINGLE_KEY_VECTORS)
def test_vector_notes_verify(signed_note_vectors: Vectors, vid: str) -> None:
    v = signed_note_vectors[vid]
    verifier = NoteVerifier.from_vkey(v["vkey"])
    text, verified = open_note(v["note"], [verifier])
    assert text == v["text"]
    assert verified == [verifier]
    assert open_note(v["note"].encode(), [verifier])[0] == v["text"]
    assert verifier.verifier_key() == v["vkey"]


def _all_vkeys(vectors: Vectors) -> list[str]:
    vkeys = [v["vkey"] for v in vectors.values() if "vkey" in v]
    vkeys += vectors["formats-benchmark-extra-sigs"]["vkeys"]
    vkeys += [kp["vkey"] for kp in vectors["formats-test-keypairs"]["keypairs"]]
    return vkeys


def test_key_ids(signed_note_vectors: Vectors) -> None:
    vkeys = _all_vkeys(signed_note_vectors)
    assert len(vkeys) == 12
    for vkey in vkeys:
        name, key_id_hex, key_b64 = vkey.split("+", 2)
        raw = base64.b64decode(key_b64)
        v = NoteVerifier.from_vkey(vkey)
        assert (v.name, v.key_id.hex(), v.public_key.raw) == (name, key_id_hex, raw[1:])
        assert v.key_id == hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]


def test_skeys_reproduce_vkeys_and_signatures(signed_note_vectors: Vectors) -> None:
    pairs = [
        (kp["skey"], kp["vkey"]) for kp in signed_note_vectors["formats-test-keypairs"]["keypairs"]
    ]
    for vid in ("go-xmod-peterneumann", "tessera-testlog-key"):
        pairs.append((signed_note_vectors[vid]["skey"], signed_note_vectors[vid]["vkey"]))
    assert len(pairs) == 6
    for skey, vkey in pairs:
        signer = signer_from_skey(skey)
        assert signer.verifier_key() == vkey
        assert signer.key_id.hex() == vkey.split("+")[1]
        note = signer.sign("round trip\n")
        assert open_note(note, [NoteVerifier.from_vkey(vkey)])[0] == "round trip\n"
    # Ed25519 is deterministic, so re-signing reproduces the published note byte for byte.
    v = signed_note_vectors["go-xmod-peterneumann"]
    assert signer_from_skey(v["skey"]).sign(v["text"]) == v["note"]


def test_multiple_signers_and_unknown_signers(signed_note_vectors: Vectors) -> None:
    v = signed_note_vectors["go-xmod-enochroot"]
    peter = NoteVerifier.from_vkey(signed_note_vectors["go-xmod-peterneumann"]["vkey"])
    enoch = NoteVerifier.from_vkey(v["vkey"])
    assert open_note(v["note"], [peter]) == (v["text"], [peter])
    assert open_note(v["note"], [enoch]) == (v["text"], [enoch])
    assert open_note(v["note"], [enoch, peter])[1] == [peter, enoch]  # in note order
    stranger = NoteVerifier.from_vkey(signed_note_vectors["c2sp-signed-note-example"]["vkey"])
    with pytest.raises(SignatureError):
        open_note(v["note"], [stranger])
    with pytest.raises(SignatureError):
        open_note(v["note"], [])


def test_witness_style_extra_signatures(signed_note_vectors: Vectors) -> None:
    base = signed_note_vectors["sumdb-real-tree-head"]
    extra = signed_note_vectors["formats-benchmark-extra-sigs"]
    note = base["note"] + "".join(line + "\n" for line in extra["sig_lines"])
    verifiers = [NoteVerifier.from_vkey(k) for k in [base["vkey"], *extra["vkeys"]]]
    text, verified = open_note(note, verifiers)
    assert text == base["text"]
    assert verified == verifiers
    for v in verifiers:
        assert open_note(note, [v])[1] == [v]


def test_same_name_other_key_is_ignored(signed_note_vectors: Vectors) -> None:
    v = signed_note_vectors["go-xmod-peterneumann"]
    real = NoteVerifier.from_vkey(v["vkey"])
    # Same name, different key (so different key id): a signature for an unknown key.
    impostor = NoteVerifier("PeterNeumann", PrivateKey.from_seed(b"\x01" * 32).public_key)
    with pytest.raises(SignatureError, match="not signed by any known key"):
        open_note(v["note"], [impostor])
    assert open_note(v["note"], [impostor, real])[1] == [real]


def test_duplicate_signature_lines_count_once(chip_key: PrivateKey) -> None:
    signer = NoteSigner("example.com/log", chip_key)
    note = signer.sign("hello\n")
    line = note.split("\n\n", 1)[1]
    assert open_note(note + line, [signer.verifier()])[1] == [signer.verifier()]


def test_tampered_text_with_known_key_is_rejected(signed_note_vectors: Vectors) -> None:
    v = signed_note_vectors["go-xmod-enochroot"]
    peter = NoteVerifier.from_vkey(signed_note_vectors["go-xmod-peterneumann"]["vkey"])
    enoch = NoteVerifier.from_vkey(v["vkey"])
    tampered = v["note"].replace("cryptography", "cryptographY", 1)
    for known in ([peter], [enoch], [peter, enoch]):
        with pytest.raises(SignatureError):
            open_note(tampered, known)
    # A bad signature from one known key rejects the note even if another known key verifies.
    peter_line, enoch_line = v["note"].split("\n\n", 1)[1].splitlines()
    broken = enoch_line[:-6] + ("A" if enoch_line[-6] != "A" else "B") + enoch_line[-5:]
    with pytest.raises(SignatureError):
        open_note(f"{v['text']}\n{peter_line}\n{broken}\n", [peter, enoch])


def _peter(vectors: Vectors) -> tuple[str, NoteVerifier]:
    v = vectors["go-xmod-peterneumann"]
    return v["note"], NoteVerifier.from_vkey(v["vkey"])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n.replace("\n\n", "\n"),  # no blank line
        lambda n: n[:-1],  # no final newline
        lambda n: n.replace("\u2014 ", "- "),  # not an em dash
        lambda n: n.replace("\u2014 PeterNeumann ", "\u2014 PeterNeumann"),  # no space
        lambda n: n.replace("\u2014 PeterNeumann ", "\u2014  "),  # empty name
        lambda n: n[:-2] + "!\n",  # bad base64
        lambda n: n.replace("cryptography", "crypto\x07graphy", 1),  # control character
        lambda n: n.replace("you", "you\r", 1),
        lambda n: n + "\n",  # trailing blank line: the signature block becomes empty
        lambda n: n.split("\u2014")[0] + "\u2014 PeterNeumann AAAA\n",  # signature too short
        lambda n: n + "".join(n.split("\n\n")[1] for _ in range(100)),  # too many signatures
    ],
)
def test_malformed_notes(signed_note_vectors: Vectors, mutate: Any) -> None:
    note, verifier = _peter(signed_note_vectors)
    with pytest.raises(FormatError):
        open_note(mutate(note), [verifier])


def test_invalid_utf8_note(signed_note_vectors: Vectors) -> None:
    note, verifier = _peter(signed_note_vectors)
    with pytest.raises(FormatError):
        open_note(note.encode() + b"\xff", [verifier])


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # uppercase hex
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # type 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short key
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad padding
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_vkeys(vkey: str) -> None:
    with pytest.raises(FormatError):
        NoteVerifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
        "PUBLIC+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+!!!",
    ],
)
def test_bad_skeys(skey: str) -> None:
    with pytest.raises(FormatError) as exc:
        signer_from_skey(skey)
    assert "AYEKFALV" not in str(exc.value)  # secrets never end up in messages


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b"])
def test_bad_key_names(chip_key: PrivateKey, name: str) -> None:
    with pytest.raises(FormatError):
        NoteSigner(name, chip_key)


@pytest.mark.parametrize("text", ["no newline", "", "bell\x07\n"])
def test_bad_texts_are_not_signed(chip_key: PrivateKey, text: str) -> None:
    with pytest.raises(FormatError):
        NoteSigner("example.com/log", chip_key).sign(text)


def test_signer_shape(chip_key: PrivateKey) -> None:
    signer = NoteSigner("example.com/log", chip_key)
    pub = chip_key.public_key
    assert signer.key_id == hashlib.sha256(b"example.com/log\n\x01" + pub.raw).digest()[:4]
    assert signer.verifier_key() == (
        "example.com/log+"
        + signer.key_id.hex()
        + "+"
        + base64.b64encode(b"\x01" + pub.raw).decode()
    )
    note = signer.sign("a\n\nb\n")  # text may contain blank lines: the last one splits
    assert note.startswith("a\n\nb\n\n\u2014 example.com/log ")
    assert open_note(note, [NoteVerifier.from_vkey(signer.verifier_key())])[0] == "a\n\nb\n"
    v = signer.verifier()
    sig = chip_key.sign(b"x\n")
    assert v.verify(b"x\n", sig) and not v.verify(b"y\n", sig)
    assert PublicKey(v.public_key.raw) == pub
