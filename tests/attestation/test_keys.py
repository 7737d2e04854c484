"""Ed25519 keys: encodings, key ids, strict RFC 8032 verification."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from attestation.errors import FormatError, SignatureError
from attestation.keys import PrivateKey, PublicKey, is_small_order

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
# Order of the Ed25519 base point.
L = 2**252 + 27742317777372353535851937790883648493


def test_rfc8032_vector() -> None:
    key = PrivateKey.from_seed(RFC8032_SEED)
    assert key.seed == RFC8032_SEED
    assert key.public_key.raw == RFC8032_PUB
    assert key.sign(b"") == RFC8032_SIG
    key.public_key.verify(RFC8032_SIG, b"")


def test_non_canonical_s_is_rejected() -> None:
    # S + L verifies under the cofactored/ZIP-215 rules but not under strict RFC 8032.
    s = int.from_bytes(RFC8032_SIG[32:], "little")
    malleated = RFC8032_SIG[:32] + (s + L).to_bytes(32, "little")
    with pytest.raises(SignatureError):
        PublicKey(RFC8032_PUB).verify(malleated, b"")


def test_key_id_and_encodings(chip_key: PrivateKey) -> None:
    pub = chip_key.public_key
    assert pub.key_id == hashlib.sha256(pub.raw).hexdigest()
    assert len(pub.key_id) == 64
    assert PublicKey.from_b64(pub.to_b64()) == pub
    assert base64.b64decode(pub.to_b64()) == pub.raw
    assert PublicKey.from_pem(pub.to_pem()) == pub
    assert pub.to_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    again = PrivateKey.from_pem(chip_key.to_pem())
    assert again.seed == chip_key.seed
    assert chip_key.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert PrivateKey.from_seed(chip_key.seed).public_key == pub
    assert hash(PublicKey(pub.raw)) == hash(pub)


def test_cryptography_key_is_cached(chip_key: PrivateKey) -> None:
    pub = PublicKey(chip_key.public_key.raw)
    assert pub.to_cryptography() is pub.to_cryptography()
    assert pub.to_cryptography().public_bytes_raw() == pub.raw
    assert chip_key.to_cryptography().public_key().public_bytes_raw() == pub.raw


def test_sign_verify(chip_key: PrivateKey, other_key: PrivateKey) -> None:
    sig = chip_key.sign(b"message")
    assert len(sig) == 64
    chip_key.public_key.verify(sig, b"message")
    with pytest.raises(SignatureError):
        chip_key.public_key.verify(sig, b"messagE")
    with pytest.raises(SignatureError):
        other_key.public_key.verify(sig, b"message")
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 1
        with pytest.raises(SignatureError):
            chip_key.public_key.verify(bytes(bad), b"message")
    for bad_len in (b"", sig[:-1], sig + b"\x00"):
        with pytest.raises(SignatureError):
            chip_key.public_key.verify(bad_len, b"message")


def test_generate_is_random() -> None:
    assert PrivateKey.generate().seed != PrivateKey.generate().seed


def test_private_repr_hides_secret(chip_key: PrivateKey) -> None:
    assert chip_key.seed.hex() not in repr(chip_key)
    assert chip_key.seed.hex()[:16] not in repr(chip_key)


@pytest.mark.parametrize(
    "s",
    [
        "",
        "AAAA",  # 3 bytes
        base64.b64encode(b"\x00" * 33).decode(),
        base64.b64encode(b"\x00" * 32).decode()[:-1],  # bad padding
        base64.b64encode(b"\x00" * 32).decode() + "\n",
        " " + base64.b64encode(b"\x00" * 32).decode(),
        "é" * 44,
        base64.urlsafe_b64encode(b"\xff" * 32).decode(),
    ],
)
def test_from_b64_rejects(s: str) -> None:
    with pytest.raises(FormatError):
        PublicKey.from_b64(s)


P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P


def _sqrt(a: int) -> int:
    """Square root mod p (p = 5 mod 8), asserting one exists."""
    x = pow(a, (P + 3) // 8, P)
    if x * x % P != a % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    assert x * x % P == a % P
    return x


def _small_order_encodings() -> list[bytes]:
    # Order-8 points double to the order-4 points (x, 0), so y^2 + x^2 = 0 and, on the curve,
    # d*y^4 + 2*y^2 - 1 = 0: y^2 = (-1 + sqrt(1 + d)) / d for the root that is a square.
    ys = {0, 1, P - 1}
    for root in (_sqrt(1 + D), P - _sqrt(1 + D)):
        y2 = (root - 1) * pow(D, -1, P) % P
        if pow(y2, (P - 1) // 2, P) == 1:
            y = _sqrt(y2)
            ys |= {y, P - y}
    assert len(ys) == 5
    encodings = []
    for y in ys:
        for yy in (y, y + P):  # canonical and, where it fits in 255 bits, non-canonical
            if yy < 2**255:
                for sign in (0, 1 << 255):
                    encodings.append((yy | sign).to_bytes(32, "little"))
    return encodings


def test_openssl_accepts_small_order_forgeries_so_we_refuse_those_keys() -> None:
    identity = bytes([1]) + bytes(31)
    forged = identity + bytes(32)  # R = identity, S = 0
    # OpenSSL 3.x/4.x accepts this; a future one may refuse it, and our check stays harmless.
    with contextlib.suppress(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(identity).verify(forged, b"any message at all")
    encodings = _small_order_encodings()
    assert len(encodings) == 14
    for raw in encodings:
        assert is_small_order(raw)
        with pytest.raises(FormatError, match="small-order"):
            PublicKey(raw)
    assert not is_small_order(RFC8032_PUB)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 31, b"\x00" * 33, bytearray(32), "x" * 32])
def test_public_key_rejects_bad_raw(raw: object) -> None:
    with pytest.raises(FormatError):
        PublicKey(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33])
def test_from_seed_rejects(seed: bytes) -> None:
    with pytest.raises(FormatError):
        PrivateKey.from_seed(seed)


def test_pem_rejects_other_algorithms_and_garbage() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pub_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ec_priv_pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for bad in (ec_pub_pem, b"", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"):
        with pytest.raises(FormatError):
            PublicKey.from_pem(bad)
    for bad in (ec_priv_pem, b"not a pem"):
        with pytest.raises(FormatError):
            PrivateKey.from_pem(bad)
