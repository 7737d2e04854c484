"""The registry's Ed25519 verification rule (PROTOCOL.md section 1.1), on libsodium.

Implementations of "RFC 8032 verification" disagree on crafted inputs. Partners re-verify every
signature with their own library, so the registry accepts a signature only if **both** OpenSSL
and libsodium accept it, and it states that rule in checkable terms. A signature
``R || S`` over message ``M`` under public key ``A`` (all raw RFC 8032 encodings) is valid iff

1. ``A`` is 32 bytes, canonical (its y coordinate, the low 255 bits, is below p) and not one of
   the 8 small-order points;
2. the signature is 64 bytes, ``S`` (little-endian, bytes 32..63) is below the group order L;
3. ``R`` is canonical and not a small-order point;
4. the cofactorless equation ``[S]B = R + [SHA-512(R || A || M) mod L]A`` holds, checked as
   "encode([S]B - [k]A) equals the bytes of R" (so R must decode to a curve point).

libsodium (>= 1.0.16, as bundled with PyNaCl) applies 1 to 4 itself; OpenSSL applies 2 and 4 but
accepts small-order or non-canonical ``A`` and small-order ``R``. Rules 1 and 3 are checked here
in Python before libsodium runs, so the verdict does not depend on the libsodium build either.
Mixed-order keys (a large-order point plus a small-order one) are accepted by both libraries and
so by this rule: the equation is cofactorless, so a signature verifies only if it holds exactly.

libsodium verifies about twice as fast as OpenSSL here and releases the GIL while it does.
"""

from __future__ import annotations

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

__all__ = [
    "GROUP_ORDER",
    "KEY_SIZE",
    "SIGNATURE_SIZE",
    "is_canonical_point",
    "is_small_order",
    "rejection_reason",
    "verify",
    "verify_with_checked_key",
]

KEY_SIZE = 32
SIGNATURE_SIZE = 64
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
_P = 2**255 - 19
# The eight small-order points have y = 1 (identity), p-1 (order 2), 0 (order 4) and +-_Y8
# (order 8, from d*y^4 + 2*y^2 - 1 = 0); comparing y mod p also catches non-canonical encodings.
_Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y8, _P - _Y8})
_Y_MASK = (1 << 255) - 1
_SIGN_BIT = 1 << 255
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _small_order_encodings() -> frozenset[bytes]:
    """The canonical encodings of the 8 small-order points (x recovered from y, both signs)."""
    d = (-121665 * pow(121666, _P - 2, _P)) % _P
    out: set[bytes] = set()
    for y in _SMALL_ORDER_Y:
        x2 = (y * y - 1) * pow(d * y * y + 1, _P - 2, _P) % _P
        x = pow(x2, (_P + 3) // 8, _P)
        if (x * x - x2) % _P:
            x = x * _SQRT_M1 % _P
        signs = (0,) if x == 0 else (0, 1)
        out.update((y | (sign << 255)).to_bytes(32, "little") for sign in signs)
    return frozenset(out)


# Canonical encodings only: a non-canonical R is refused before this set is consulted.
_SMALL_ORDER_ENCODINGS = _small_order_encodings()


def is_small_order(raw: bytes) -> bool:
    """Whether a 32-byte point encoding names a point of order dividing 8 (in any encoding)."""
    return (int.from_bytes(raw, "little") & _Y_MASK) % _P in _SMALL_ORDER_Y


def is_canonical_point(raw: bytes) -> bool:
    """Whether a 32-byte encoding is canonical: y below p, and no sign bit on x = 0.

    x = 0 only for y = 1 and y = p - 1 (both small-order), where the sign bit must be clear.
    """
    n = int.from_bytes(raw, "little")
    y = n & _Y_MASK
    if y >= _P:
        return False
    return not (n & _SIGN_BIT and y in (1, _P - 1))


def rejection_reason(public_key: bytes, signature: bytes) -> str | None:
    """Why rules 1 to 3 refuse this key and signature before any curve arithmetic; else None."""
    if len(public_key) != KEY_SIZE:
        return "public key is not 32 bytes"
    if len(signature) != SIGNATURE_SIZE:
        return "signature is not 64 bytes"
    if not is_canonical_point(public_key):
        return "public key encoding is not canonical"
    if is_small_order(public_key):
        return "public key is a small-order point"
    if int.from_bytes(signature[32:], "little") >= GROUP_ORDER:
        return "S is not below the group order"
    r = signature[:32]
    if not is_canonical_point(r):
        return "R encoding is not canonical"
    if is_small_order(r):
        return "R is a small-order point"
    return None


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is valid for ``message`` under ``public_key`` by the rule above."""
    if rejection_reason(public_key, signature) is not None:
        return False
    return _libsodium(public_key, signature, message)


def verify_with_checked_key(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """:func:`verify` for a key that already passed rule 1 (``PublicKey`` checks it once).

    Rules 2 and 3 on byte tests first: ``S`` is surely below L when its top byte is below
    0x10, and ``R`` can only be non-canonical when its top byte is 0x7f or 0xff.
    """
    if len(signature) != SIGNATURE_SIZE:
        return False
    if signature[63] >= 0x10 and int.from_bytes(signature[32:], "little") >= GROUP_ORDER:
        return False
    r = signature[:32]
    if (r[31] & 0x7F) == 0x7F and not is_canonical_point(r):
        return False
    if r in _SMALL_ORDER_ENCODINGS:
        return False
    return _libsodium(public_key, signature, message)


def _libsodium(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        crypto_sign_open(signature + message, public_key)
    except BadSignatureError:
        return False
    return True
