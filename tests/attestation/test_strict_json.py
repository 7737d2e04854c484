"""The strict JSON decoder: what it refuses, and that its orjson path for canonical documents
reads exactly what the pure-Python decoder with hooks reads (duplicate keys, NaN/Infinity,
overflowing numbers, integers beyond 64 bits, deep nesting are never let through)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
from datetime import UTC, datetime, timedelta

import pytest

from attestation import _json
from attestation._json import deeper_than, loads_strict
from attestation.errors import DuplicateKeyError, FormatError
from attestation.keys import PrivateKey
from attestation.report import UsageReport, encode_statement, parse_statement

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def strict_python(data: bytes) -> object:
    """The decoder with hooks alone (what loads_strict did before the orjson path)."""
    return _json._STRICT.decode(data.decode("utf-8"))


def fast_path(doc: bytes) -> bool:
    """Whether ``doc`` is read by orjson rather than the decoder with hooks."""
    return _json._canonical(doc, _json._FAST_MAX_DEPTH) is not _json._NOT_CANONICAL


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


@pytest.mark.parametrize(
    "doc",
    [
        b'{"a":1,"a":2}',
        b'{"a":{"b":1,"b":1}}',
        b'[{"x":"a:b","x":"a:b"}]',
    ],
)
def test_duplicate_keys_are_refused_even_when_otherwise_canonical(doc: bytes) -> None:
    assert not fast_path(doc)
    with pytest.raises(DuplicateKeyError, match="duplicate keys"):
        loads_strict(doc, "doc")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"[NaN]", "constant NaN"),
        (b"[Infinity]", "constant Infinity"),
        (b"[-Infinity]", "constant -Infinity"),
        (b"[1e999]", "out of range"),
        (b"[-1e999]", "out of range"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (b'["\xff"]', "not valid JSON"),
        (b"[1,]", "not valid JSON"),
        (b'{"a":1}x', "not valid JSON"),
        (b"[" + b"9" * 5000 + b"]", "not valid JSON"),  # over the int-digits limit
    ],
)
def test_what_the_strict_rule_refuses_is_refused(doc: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        loads_strict(doc, "doc")


@pytest.mark.parametrize(
    "value",
    [
        [2**63 - 1, -(2**63)],
        [2**64 - 1],
        [2**64],  # orjson would read a float: not canonical for it, the int stays an int
        [-(2**63) - 1],
        [10**30],
        {"seq": 2**70, "b": [0, -1, 1.5, -0.0, 5e-324, 1.7976931348623157e308]},
        {"s": '\u00e9\U0001f600 \\ " \n', "k:": "v:"},
    ],
)
def test_values_read_as_the_python_decoder_reads_them(value: object) -> None:
    doc = canonical(value)
    got = loads_strict(doc, "doc")
    assert got == value
    # repr tells 1 from 1.0 and 0.0 from -0.0, which == does not.
    assert repr(got) == repr(strict_python(doc))


def test_big_integers_stay_integers() -> None:
    for n in (2**64, 2**64 + 1, -(2**63) - 1, 10**19, 2**100):
        got = loads_strict(f"[{n}]".encode(), "doc")
        assert got == [n]
        assert type(got[0]) is int


def test_random_floats_read_identically() -> None:
    rng = random.Random(15)
    values = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(20_000)]
    values += [rng.uniform(0, 1) for _ in range(5_000)]
    values += [round(rng.uniform(0, 1e6), rng.randrange(0, 12)) for _ in range(5_000)]
    fast = 0
    for v in filter(math.isfinite, values):
        doc = canonical({"v": v})
        assert repr(loads_strict(doc, "doc")) == repr(strict_python(doc))
        fast += fast_path(doc)
    assert fast > len(values) // 2  # most took the orjson path (Python writes 1e-05, orjson 1e-5)
    # Float texts not in the shortest form take the strict path and still read the same.
    for text in ("0.10000000000000000555", "1E5", "1e+5", "100000.000", "0.3e0", "-0"):
        doc = f"[{text}]".encode()
        assert repr(loads_strict(doc, "doc")) == repr(strict_python(doc))


def test_signed_statements_take_the_fast_path_and_parse_the_same() -> None:
    chip_key = PrivateKey.from_seed(hashlib.sha256(b"chip:strict-json").digest())
    report = UsageReport(
        chip_id="NV-1",
        key_id=chip_key.public_key.key_id,
        seq=3,
        prev_digest="ab" * 32,
        window_start=T0,
        window_end=T0 + timedelta(minutes=15),
        utilization=0.345,
        energy_j=315000.0,
        interconnect=(),
    )
    payload = encode_statement(report)
    assert fast_path(payload)
    assert loads_strict(payload, "statement") == strict_python(payload)
    assert parse_statement(payload) == report
    # The same statement with whitespace, or a key twice, is read by the strict decoder.
    spaced = payload.replace(b",", b", ")
    assert not fast_path(spaced)
    assert parse_statement(spaced) == report
    doubled = payload.replace(b'"seq":3', b'"seq":3,"seq":3')
    with pytest.raises(DuplicateKeyError):
        parse_statement(doubled)


def test_deep_canonical_documents_take_the_strict_path() -> None:
    # Canonical, and within orjson's depth limit, but deeper than the fast path keeps: the
    # strict decoder reads it (or refuses it) exactly as before.
    for depth in (200, 256, 300, 1000):
        doc = b"[" * depth + b"]" * depth
        taken = fast_path(doc)
        assert taken == (depth < 256)
    assert loads_strict(b"[" * 300 + b"]" * 300, "doc") == strict_python(b"[" * 300 + b"]" * 300)
    with pytest.raises(FormatError, match="not valid JSON"):
        loads_strict(b"[" * 1020 + b"]" * 1020, "doc")
    # A wide document with many arrays but shallow is kept.
    wide = canonical({"reports": [{"a": [1], "b": {"c": "d"}} for _ in range(300)]})
    assert fast_path(wide)
    assert loads_strict(wide, "doc") == strict_python(wide)


@pytest.mark.parametrize("spaced", [False, True])
def test_max_depth_is_enforced_on_both_paths(spaced: bool) -> None:
    def nested(depth: int) -> bytes:
        doc = b"[]"
        for _ in range(depth - 1):
            doc = b'{"a":' + doc + b"}"
        return doc.replace(b":", b": ") if spaced else doc

    assert fast_path(nested(32)) != spaced
    assert deeper_than(loads_strict(nested(32), "body", max_depth=32), 31)
    with pytest.raises(FormatError, match=r"^body nests deeper than 32 levels$"):
        loads_strict(nested(33), "body", max_depth=32)
    # Without max_depth, 33 levels are fine.
    assert not deeper_than(loads_strict(nested(33), "body"), 33)
