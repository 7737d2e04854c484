"""The strict Ed25519 rule against OpenSSL and libsodium, on crafted edge cases.

Each case is built here with a small pure-Python Ed25519 (RFC 8032 section 5.1 arithmetic), so
the signatures can have small-order or non-canonical R, non-canonical S, mixed-order keys and so
on, with the verification equation still holding where that matters. For every case the test
checks three verdicts against each other:

- the rule written out in Python (canonical and not small-order A and R, S < L, the
  cofactorless equation), an independent statement of PROTOCOL.md section 1.1;
- OpenSSL (through ``cryptography``) AND libsodium (through PyNaCl), the libraries partners use;
- :func:`attestation.ed25519.verify`, what the registry runs, and :meth:`PublicKey.verify`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from attestation import ed25519
from attestation.errors import FormatError, SignatureError
from attestation.keys import PrivateKey, PublicKey

# --- pure-Python Ed25519 (extended coordinates), enough to craft signatures --------------------

P = 2**255 - 19
L = ed25519.GROUP_ORDER
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
Point = tuple[int, int, int, int]
IDENTITY: Point = (0, 1, 1, 0)


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(k: int, p: Point) -> Point:
    q = IDENTITY
    while k:
        if k & 1:
            q = _add(q, p)
        p = _add(p, p)
        k >>= 1
    return q


def _neg(p: Point) -> Point:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def _encode(p: Point) -> bytes:
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _recover_x(y: int, sign: int) -> int | None:
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    return P - x if (x & 1) != sign else x


def _decode(raw: bytes) -> Point | None:
    """Decode any 32-byte encoding, canonical or not (y taken mod p): None if not on the curve."""
    n = int.from_bytes(raw, "little")
    y = (n & ((1 << 255) - 1)) % P
    x = _recover_x(y, n >> 255)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _eq(a: Point, b: Point) -> bool:
    return _encode(a) == _encode(b)


BY = 4 * pow(5, P - 2, P) % P
B: Point = (_recover_x(BY, 0) or 0, BY, 1, (_recover_x(BY, 0) or 0) * BY % P)
T8 = _decode(
    (2707385501144840649318225287225658788936804267575313519463743609750303402022).to_bytes(
        32, "little"
    )
)
assert T8 is not None


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _secret(label: str) -> int:
    return _h(label.encode()) % L


def _sign_with(a: int, a_enc: bytes, r: int, r_enc: bytes, msg: bytes) -> bytes:
    """S = r + k*a (mod L) with k over the given encodings: the signer's half of the equation."""
    k = _h(r_enc, a_enc, msg) % L
    s = (r + k * a) % L
    return r_enc + s.to_bytes(32, "little")


# --- the rule, restated independently -----------------------------------------------------------


def rule(pub: bytes, sig: bytes, msg: bytes) -> bool:
    def canonical(raw: bytes) -> bool:
        n = int.from_bytes(raw, "little")
        y = n & ((1 << 255) - 1)
        return y < P and not (n >> 255 and y in (1, P - 1))

    def small(pt: Point) -> bool:
        return _eq(_mul(8, pt), IDENTITY)

    if len(pub) != 32 or len(sig) != 64:
        return False
    a_pt, r_pt = _decode(pub), _decode(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a_pt is None or r_pt is None or not canonical(pub) or not canonical(sig[:32]):
        return False
    if small(a_pt) or small(r_pt) or s >= L:
        return False
    k = _h(sig[:32], pub, msg) % L
    return _encode(_add(_mul(s, B), _neg(_mul(k, a_pt)))) == sig[:32]


def openssl(pub: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


def libsodium(pub: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        crypto_sign_open(sig + msg, pub)
    except BadSignatureError:
        return False
    return True


# --- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    pub: bytes
    sig: bytes
    msg: bytes
    valid: bool  # what the rule must say (checked against the restated rule too)


def _noncanonical(raw: bytes) -> bytes:
    """The encoding with y + p in place of y (exists when y < 19)."""
    n = int.from_bytes(raw, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    return ((y + P) | (sign << 255)).to_bytes(32, "little")


def _cases() -> list[Case]:
    out: list[Case] = []
    msg = b"chipreg edge case"
    a = _secret("key")
    a_pt = _mul(a, B)
    a_enc = _encode(a_pt)
    r = _secret("nonce")
    r_enc = _encode(_mul(r, B))
    good = _sign_with(a, a_enc, r, r_enc, msg)
    out.append(Case("valid", a_enc, good, msg, True))
    out.append(Case("other message", a_enc, good, msg + b"!", False))
    s = int.from_bytes(good[32:], "little")
    out.append(Case("S + L", a_enc, good[:32] + (s + L).to_bytes(32, "little"), msg, False))
    out.append(Case("S = L", a_enc, good[:32] + L.to_bytes(32, "little"), msg, False))
    out.append(
        Case("S high bit", a_enc, good[:32] + (s | 1 << 255).to_bytes(32, "little"), msg, False)
    )
    # R = identity with S = k*a: the equation holds; libsodium refuses small-order R.
    ident = _encode(IDENTITY)
    out.append(
        Case("R identity, equation holds", a_enc, _sign_with(a, a_enc, 0, ident, msg), msg, False)
    )
    # The same R in a non-canonical encoding (y = p + 1), and as "-0" (sign bit on x = 0).
    for label, enc in (
        ("R identity y+p", _noncanonical(ident)),
        ("R identity -0", (1 | 1 << 255).to_bytes(32, "little")),
    ):
        out.append(Case(label, a_enc, _sign_with(a, a_enc, 0, enc, msg), msg, False))
    # Small-order (but non-identity) R with a mixed-order key A' = aB + T8 so that the equation
    # holds: [S]B = R + [k]A' with R = -[k]T8 and S = k*a.
    mixed = _add(a_pt, T8)
    m_enc = _encode(mixed)
    for i in range(64):
        mm = msg + bytes([i])
        for cand in range(1, 8):
            r_small = _encode(_mul(cand, T8))
            k = _h(r_small, m_enc, mm) % L
            if _eq(_mul(cand, T8), _neg(_mul(k, T8))):
                sig = r_small + (k * a % L).to_bytes(32, "little")
                out.append(Case("R small-order, mixed key, equation holds", m_enc, sig, mm, False))
                break
        else:
            continue
        break
    # Mixed-order key, ordinary R: valid iff k*T8 = 0, i.e. k = 0 mod 8 (cofactorless check).
    found = {True: False, False: False}
    for i in range(200):
        mm = msg + b"#" + str(i).encode()
        sig = _sign_with(a, m_enc, r, r_enc, mm)
        ok = _h(r_enc, m_enc, mm) % L % 8 == 0
        if not found[ok]:
            found[ok] = True
            label = "mixed-order key, k = 0 mod 8" if ok else "mixed-order key, k != 0 mod 8"
            out.append(Case(label, m_enc, sig, mm, ok))
        if all(found.values()):
            break
    # Small-order keys: identity with R = identity, S = 0 (OpenSSL accepts it for any message),
    # also in non-canonical encodings; and an order-8 key.
    zero_sig = ident + bytes(32)
    out.append(Case("A identity, R identity, S = 0", ident, zero_sig, msg, False))
    out.append(Case("A identity y+p, S = 0", _noncanonical(ident), zero_sig, msg, False))
    out.append(
        Case("A identity -0, S = 0", (1 | 1 << 255).to_bytes(32, "little"), zero_sig, msg, False)
    )
    t8 = _encode(T8)
    out.append(Case("A order 8", t8, _sign_with(0, t8, r, r_enc, msg), msg, False))
    # Non-canonical R for an ordinary signature: flip in the sign bit of x (a different point).
    out.append(
        Case("R sign flipped", a_enc, bytes([*good[:31], good[31] ^ 0x80]) + good[32:], msg, False)
    )
    # Non-canonical large-order key encodings: points with y < 19 encoded as y + p.
    for y in range(2, 19):
        x = _recover_x(y, 0)
        if x is None:
            continue
        pt: Point = (x, y, 1, x * y % P)
        if _eq(_mul(8, pt), IDENTITY):
            continue
        enc = _noncanonical(_encode(pt))
        out.append(Case(f"A non-canonical y={y}", enc, good, msg, False))
        break
    # RFC 8032 section 7.1 TEST 2 as a known-good vector.
    out.append(
        Case(
            "RFC 8032 test 2",
            bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"),
            bytes.fromhex(
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
            ),
            b"\x72",
            True,
        )
    )
    return out


CASES = _cases()


def test_the_interesting_cases_are_all_there() -> None:
    names = {c.name for c in CASES}
    assert "R small-order, mixed key, equation holds" in names
    assert "mixed-order key, k = 0 mod 8" in names
    assert "mixed-order key, k != 0 mod 8" in names
    assert any(n.startswith("A non-canonical y=") for n in names)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule_equals_openssl_and_libsodium(case: Case) -> None:
    assert rule(case.pub, case.sig, case.msg) is case.valid
    both = openssl(case.pub, case.sig, case.msg) and libsodium(case.pub, case.sig, case.msg)
    assert both is case.valid
    assert ed25519.verify(case.pub, case.sig, case.msg) is case.valid
    if case.valid:
        assert ed25519.rejection_reason(case.pub, case.sig) is None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_public_key_verify_follows_the_rule(case: Case) -> None:
    try:
        key = PublicKey(case.pub)
    except FormatError:
        # Refused at construction (enrollment): only keys the rule refuses anyway.
        assert not case.valid
        assert ed25519.is_small_order(case.pub) or not ed25519.is_canonical_point(case.pub)
        return
    if case.valid:
        key.verify(case.sig, case.msg)
    else:
        with pytest.raises(SignatureError):
            key.verify(case.sig, case.msg)


def test_openssl_alone_is_not_the_rule() -> None:
    """Why the pre-checks exist: OpenSSL accepts some signatures that libsodium refuses."""
    loose = [c.name for c in CASES if openssl(c.pub, c.sig, c.msg) and not c.valid]
    assert "R identity, equation holds" in loose
    assert "A identity, R identity, S = 0" in loose


def test_real_signatures_agree() -> None:
    for i in range(50):
        key = PrivateKey.from_seed(hashlib.sha256(f"seed {i}".encode()).digest())
        msg = f"message {i}".encode() * i
        sig = key.sign(msg)
        pub = key.public_key.raw
        assert ed25519.verify(pub, sig, msg) and openssl(pub, sig, msg) and libsodium(pub, sig, msg)
        bad = sig[:-1] + bytes([sig[-1] ^ 1])
        assert not ed25519.verify(pub, bad, msg)
        assert not openssl(pub, bad, msg) and not libsodium(pub, bad, msg)


def test_small_order_encodings_are_the_eight_points() -> None:
    encodings = ed25519._SMALL_ORDER_ENCODINGS
    assert len(encodings) == 8
    for enc in encodings:
        pt = _decode(enc)
        assert pt is not None and _eq(_mul(8, pt), IDENTITY) and _encode(pt) == enc


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fast_path_for_checked_keys_agrees(case: Case) -> None:
    if ed25519.is_small_order(case.pub) or not ed25519.is_canonical_point(case.pub):
        return  # such keys never get this far: PublicKey refuses them
    assert ed25519.verify_with_checked_key(case.pub, case.sig, case.msg) is case.valid
