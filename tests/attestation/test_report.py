"""Usage reports: statement encoding, strict parsing, signing and verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from attestation.dsse import INTOTO_PAYLOAD_TYPE, Envelope, Signature, sign_envelope
from attestation.errors import FormatError, KeyMismatchError, SignatureError
from attestation.keys import PrivateKey
from attestation.report import (
    GENESIS_DIGEST,
    MAX_LINKS,
    MAX_WINDOW,
    STATEMENT_TYPE,
    USAGE_PREDICATE_TYPE,
    LinkKind,
    LinkTraffic,
    UsageReport,
    encode_statement,
    open_envelope,
    open_report,
    parse_statement,
    report_digest,
    sign_report,
    verify_report,
)

START = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
PREV = hashlib.sha256(b"previous report").hexdigest()


def make_report(key: PrivateKey, **kw: Any) -> UsageReport:
    fields: dict[str, Any] = {
        "chip_id": "NV-H100-0001",
        "key_id": key.public_key.key_id,
        "seq": 7,
        "prev_digest": PREV,
        "window_start": START,
        "window_end": START + timedelta(minutes=15),
        "utilization": 0.83,
        "energy_j": 561600.0,
        "interconnect": (
            LinkTraffic("NV-H100-0002", LinkKind.NVLINK, 120_000_000_000, 118_000_000_000),
        ),
    }
    fields.update(kw)
    return UsageReport(**fields)


def statement(key: PrivateKey) -> dict[str, Any]:
    """The PROTOCOL.md 2.1 example statement, with real digests."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "chip:NV-H100-0001", "digest": {"sha256": key.public_key.key_id}}],
        "predicateType": USAGE_PREDICATE_TYPE,
        "predicate": {
            "chip_id": "NV-H100-0001",
            "seq": 7,
            "prev_digest": PREV,
            "window": {"start": "2026-11-22T17:00:00Z", "end": "2026-11-22T17:15:00Z"},
            "utilization": 0.83,
            "energy_j": 561600.0,
            "interconnect": [
                {
                    "peer": "NV-H100-0002",
                    "link": "nvlink",
                    "tx_bytes": 120000000000,
                    "rx_bytes": 118000000000,
                }
            ],
        },
    }


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_protocol_example_parses_and_encodes_identically(chip_key: PrivateKey) -> None:
    payload = dumps(statement(chip_key))
    report = parse_statement(payload)
    assert report == make_report(chip_key)
    assert encode_statement(report) == payload


def test_sign_and_verify(chip_key: PrivateKey) -> None:
    report = make_report(chip_key)
    env = sign_report(report, chip_key)
    assert env.payload_type == INTOTO_PAYLOAD_TYPE
    assert len(env.signatures) == 1
    assert env.signatures[0].keyid == chip_key.public_key.key_id
    verified = verify_report(env, chip_key.public_key)
    assert verified.report == report
    assert verified.payload == env.payload == encode_statement(report)
    assert verified.digest == hashlib.sha256(env.payload).hexdigest() == report_digest(env.payload)
    assert verified.envelope is env
    # Through the wire and back.
    assert verify_report(Envelope.from_json(env.to_json()), chip_key.public_key).report == report


def test_open_report_does_not_verify(chip_key: PrivateKey, other_key: PrivateKey) -> None:
    env = sign_report(make_report(chip_key), chip_key)
    forged = Envelope(env.payload, env.payload_type, (Signature("x", b"\x00" * 64),))
    report, payload = open_report(forged)
    assert report.chip_id == "NV-H100-0001"
    assert payload == env.payload
    with pytest.raises(SignatureError):
        verify_report(forged, chip_key.public_key)


def test_verifier_parses_exact_bytes(chip_key: PrivateKey) -> None:
    # Non-canonical but valid JSON is accepted as signed; the digest is over those exact bytes.
    payload = json.dumps(statement(chip_key), indent=2).encode()
    env = sign_envelope(payload, INTOTO_PAYLOAD_TYPE, chip_key)
    verified = verify_report(env, chip_key.public_key)
    assert verified.payload == payload
    assert verified.digest == hashlib.sha256(payload).hexdigest()
    assert verified.report == make_report(chip_key)


def test_genesis_and_limits_accepted(chip_key: PrivateKey) -> None:
    r = make_report(
        chip_key,
        seq=1,
        prev_digest=GENESIS_DIGEST,
        window_end=START + MAX_WINDOW,
        utilization=1,
        energy_j=0,
        interconnect=[LinkTraffic(f"peer-{i}", "pcie", 0, 0) for i in range(MAX_LINKS)],  # type: ignore[arg-type]
    )
    assert isinstance(r.interconnect, tuple)
    assert r.interconnect[0].link is LinkKind.PCIE
    assert r.utilization == 1.0 and isinstance(r.utilization, float)
    assert parse_statement(encode_statement(r)) == r
    assert verify_report(sign_report(r, chip_key), chip_key.public_key).report == r


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(st: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        obj: Any = st
        for p in parents:
            obj = obj[int(p)] if isinstance(obj, list) else obj[p]
        if value is ...:
            del obj[last]
        elif isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value

    return mutate


BAD_STATEMENTS: dict[str, Mutation] = {
    "unknown top-level field": _set("extra", 1),
    "unknown predicate field": _set("predicate.gpu_temp", 80),
    "unknown window field": _set("predicate.window.tz", "UTC"),
    "unknown link field": _set("predicate.interconnect.0.lanes", 18),
    "unknown subject field": _set("subject.0.uri", "x"),
    "unknown digest algorithm": _set("subject.0.digest.sha512", "00"),
    "missing predicate field": _set("predicate.energy_j", ...),
    "missing window end": _set("predicate.window.end", ...),
    "missing interconnect": _set("predicate.interconnect", ...),
    "missing subject": _set("subject", ...),
    "wrong _type": _set("_type", "https://in-toto.io/Statement/v0.1"),
    "wrong predicateType": _set("predicateType", "https://slsa.dev/provenance/v1"),
    "predicate not object": _set("predicate", []),
    "seq 0": _set("predicate.seq", 0),
    "seq negative": _set("predicate.seq", -1),
    "seq bool": _set("predicate.seq", True),
    "seq float": _set("predicate.seq", 7.0),
    "seq string": _set("predicate.seq", "7"),
    "seq beyond int64": _set("predicate.seq", 2**63),
    "utilization 1.5": _set("predicate.utilization", 1.5),
    "utilization negative": _set("predicate.utilization", -0.01),
    "utilization string": _set("predicate.utilization", "0.5"),
    "utilization bool": _set("predicate.utilization", True),
    "utilization null": _set("predicate.utilization", None),
    "energy negative": _set("predicate.energy_j", -1.0),
    "energy huge": _set("predicate.energy_j", 1e309),  # json.dumps writes Infinity
    "window end == start": _set("predicate.window.end", "2026-11-22T17:00:00Z"),
    "window end < start": _set("predicate.window.end", "2026-11-22T16:59:59Z"),
    "window > 24h": _set("predicate.window.end", "2026-11-23T17:00:01Z"),
    "window fractional": _set("predicate.window.start", "2026-11-22T17:00:00.000Z"),
    "window offset": _set("predicate.window.start", "2026-11-22T17:00:00+00:00"),
    "window not string": _set("predicate.window.start", 1763830800),
    "prev_digest not hex": _set("predicate.prev_digest", "zz" * 32),
    "prev_digest uppercase": _set("predicate.prev_digest", PREV.upper()),
    "prev_digest short": _set("predicate.prev_digest", PREV[:-2]),
    "prev_digest genesis at seq 7": _set("predicate.prev_digest", GENESIS_DIGEST),
    "seq 1 without genesis": _set("predicate.seq", 1),
    "subject name mismatch": _set("subject.0.name", "chip:NV-H100-0002"),
    "subject name without prefix": _set("subject.0.name", "NV-H100-0001"),
    "two subjects": lambda st: st["subject"].append(dict(st["subject"][0])),
    "no subjects": _set("subject", []),
    "subject digest not hex": _set("subject.0.digest.sha256", "key"),
    "chip_id invalid": _set("predicate.chip_id", "bad id"),
    "link kind unknown": _set("predicate.interconnect.0.link", "usb"),
    "link kind not string": _set("predicate.interconnect.0.link", 1),
    "peer is self": _set("predicate.interconnect.0.peer", "NV-H100-0001"),
    "peer invalid": _set("predicate.interconnect.0.peer", ""),
    "tx_bytes negative": _set("predicate.interconnect.0.tx_bytes", -1),
    "rx_bytes float": _set("predicate.interconnect.0.rx_bytes", 1.0),
    "tx_bytes beyond int64": _set("predicate.interconnect.0.tx_bytes", 2**63),
    "interconnect not list": _set("predicate.interconnect", {}),
    "interconnect entry not object": _set("predicate.interconnect.0", "nvlink"),
    "duplicate (peer, link)": lambda st: st["predicate"]["interconnect"].append(
        dict(st["predicate"]["interconnect"][0])
    ),
    "too many links": _set(
        "predicate.interconnect",
        [
            {"peer": f"p{i}", "link": "pcie", "tx_bytes": 0, "rx_bytes": 0}
            for i in range(MAX_LINKS + 1)
        ],
    ),
}


@pytest.mark.parametrize("mutation", BAD_STATEMENTS.values(), ids=BAD_STATEMENTS.keys())
def test_bad_statement_is_format_error(chip_key: PrivateKey, mutation: Mutation) -> None:
    st = statement(chip_key)
    mutation(st)
    payload = json.dumps(st, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(FormatError):
        parse_statement(payload)
    # Validly signed by the right key, still refused: content rules are not signature rules.
    env = sign_envelope(payload, INTOTO_PAYLOAD_TYPE, chip_key)
    with pytest.raises(FormatError):
        verify_report(env, chip_key.public_key)
    with pytest.raises(FormatError):
        open_report(env)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[]",
        b"\xff",
        b"null",
        b'{"_type":"x","_type":"y"}',
    ],
)
def test_unparsable_statement(payload: bytes) -> None:
    with pytest.raises(FormatError):
        parse_statement(payload)


def test_duplicate_keys_and_nan_are_rejected(chip_key: PrivateKey) -> None:
    good = dumps(statement(chip_key))
    dup = good.replace(b'"seq":7', b'"seq":7,"seq":8')
    nan = good.replace(b'"utilization":0.83', b'"utilization":NaN')
    inf = good.replace(b'"energy_j":561600.0', b'"energy_j":Infinity')
    assert len({good, dup, nan, inf}) == 4
    for payload in (dup, nan, inf):
        with pytest.raises(FormatError):
            parse_statement(payload)


def test_error_messages_name_the_field(chip_key: PrivateKey) -> None:
    for path, value, word in [
        ("predicate.seq", 0, "seq"),
        ("predicate.utilization", 1.5, "utilization"),
        ("predicate.prev_digest", "x", "prev_digest"),
        ("predicate.interconnect.0.tx_bytes", -1, r"predicate\.interconnect\[0\]\.tx_bytes"),
        ("predicate.gpu", 1, "gpu"),
    ]:
        st = statement(chip_key)
        _set(path, value)(st)
        with pytest.raises(FormatError, match=word):
            parse_statement(dumps(st))


def test_envelope_shape(chip_key: PrivateKey, other_key: PrivateKey) -> None:
    env = sign_report(make_report(chip_key), chip_key)
    extra = sign_envelope(env.payload, INTOTO_PAYLOAD_TYPE, other_key).signatures[0]
    two = Envelope(env.payload, env.payload_type, (env.signatures[0], extra))
    wrong_type = sign_envelope(env.payload, "application/json", chip_key)
    none = Envelope(env.payload, env.payload_type, ())
    for bad in (two, wrong_type, none):
        with pytest.raises(FormatError):
            verify_report(bad, chip_key.public_key)
        with pytest.raises(FormatError):
            open_report(bad)


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_flipped_byte_is_signature_error(chip_key: PrivateKey, where: str) -> None:
    env = sign_report(make_report(chip_key), chip_key)
    sig = env.signatures[0]
    for i in range(0, len(env.payload) if where == "payload" else len(sig.sig), 7):
        if where == "payload":
            p = bytearray(env.payload)
            p[i] ^= 0x01
            bad = Envelope(bytes(p), env.payload_type, env.signatures)
        else:
            s = bytearray(sig.sig)
            s[i] ^= 0x01
            bad = Envelope(env.payload, env.payload_type, (Signature(sig.keyid, bytes(s)),))
        with pytest.raises(SignatureError):
            verify_report(bad, chip_key.public_key)


def test_wrong_key_is_signature_error(chip_key: PrivateKey, other_key: PrivateKey) -> None:
    env = sign_report(make_report(chip_key), chip_key)
    with pytest.raises(SignatureError):
        verify_report(env, other_key.public_key)


def test_subject_naming_another_key(chip_key: PrivateKey, other_key: PrivateKey) -> None:
    report = make_report(chip_key)
    with pytest.raises(KeyMismatchError):
        sign_report(report, other_key)
    # Signed by other_key, but the subject names chip_key: a relayed or confused statement.
    env = sign_envelope(encode_statement(report), INTOTO_PAYLOAD_TYPE, other_key)
    with pytest.raises(KeyMismatchError):
        verify_report(env, other_key.public_key)


def test_opened_report_verifies_like_verify_report(
    chip_key: PrivateKey, other_key: PrivateKey
) -> None:
    env = sign_report(make_report(chip_key), chip_key)
    opened = open_envelope(env)
    assert opened.verify(chip_key.public_key) == verify_report(env, chip_key.public_key)
    with pytest.raises(SignatureError):
        opened.verify(other_key.public_key)
    tampered = Envelope(
        env.payload.replace(b'"seq":', b'"seq": '), env.payload_type, env.signatures
    )
    with pytest.raises(SignatureError):
        open_envelope(tampered).verify(chip_key.public_key)
    relayed = sign_envelope(encode_statement(make_report(chip_key)), INTOTO_PAYLOAD_TYPE, other_key)
    with pytest.raises(KeyMismatchError):
        open_envelope(relayed).verify(other_key.public_key)


@pytest.mark.parametrize(
    "changes",
    [
        {"window_start": datetime(2026, 11, 22, 17, 0)},
        {"window_start": START.replace(microsecond=5)},
        {"window_end": START},
        {"window_end": START + MAX_WINDOW + timedelta(seconds=1)},
        {"utilization": float("nan")},
        {"energy_j": float("inf")},
        {"key_id": "ab"},
        {"interconnect": ("not a link",)},
        {"interconnect": None},
    ],
)
def test_usage_report_validates_itself(chip_key: PrivateKey, changes: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        make_report(chip_key, **changes)


def test_link_traffic_validates_itself() -> None:
    assert LinkTraffic("p", "nvlink", 1, 2).link is LinkKind.NVLINK  # type: ignore[arg-type]
    for args in [
        ("p", "usb", 0, 0),
        ("", "nvlink", 0, 0),
        ("p", "nvlink", -1, 0),
        ("p", "nvlink", 0, True),
    ]:
        with pytest.raises(FormatError):
            LinkTraffic(*args)  # type: ignore[arg-type]


# -- the optional facility claim -------------------------------------------------------------


def test_facility_claim_round_trips_and_is_absent_by_default() -> None:
    key = PrivateKey.from_seed(b"\x07" * 32)
    plain = make_report(key)
    assert plain.facility_id is None
    assert b"facility_id" not in encode_statement(plain)
    claimed = make_report(key, facility_id=42)
    payload = encode_statement(claimed)
    assert json.loads(payload)["predicate"]["facility_id"] == 42
    assert parse_statement(payload) == claimed
    assert verify_report(sign_report(claimed, key), key.public_key).report.facility_id == 42


@pytest.mark.parametrize("bad", [0, -1, 2**31, "3", 1.0, True, None])
def test_facility_claim_must_be_a_positive_integer(bad: object) -> None:
    key = PrivateKey.from_seed(b"\x07" * 32)
    obj = json.loads(encode_statement(make_report(key)))
    obj["predicate"]["facility_id"] = bad
    with pytest.raises(FormatError, match="facility_id"):
        parse_statement(json.dumps(obj).encode())
    if bad is not None:
        with pytest.raises(FormatError, match="facility_id"):
            make_report(key, facility_id=bad)
