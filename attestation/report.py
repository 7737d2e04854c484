"""Usage reports (PROTOCOL.md section 2): in-toto statements in DSSE envelopes, chip-signed.

This module sits on the registry's ingest path, so parsing is one strict ``json.loads`` plus
cheap shape checks; value rules live in the dataclasses' ``__post_init__`` so that reports built
in code and reports parsed from the wire are held to the same rules by the same lines.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from attestation._json import check_keys, loads_strict
from attestation.dsse import INTOTO_PAYLOAD_TYPE, Envelope, pae, sign_envelope
from attestation.errors import FormatError, KeyMismatchError
from attestation.identity import CHIP_ID_PATTERN
from attestation.keys import PrivateKey, PublicKey
from attestation.timefmt import format_time, parse_time, require_utc_seconds

__all__ = [
    "GENESIS_DIGEST",
    "MAX_LINKS",
    "MAX_WINDOW",
    "STATEMENT_TYPE",
    "USAGE_PREDICATE_TYPE",
    "LinkKind",
    "LinkTraffic",
    "OpenedReport",
    "UsageReport",
    "VerifiedReport",
    "encode_statement",
    "open_envelope",
    "open_report",
    "parse_statement",
    "report_digest",
    "sign_report",
    "verify_report",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
USAGE_PREDICATE_TYPE = "https://chipreg.org/attestation/usage/v1"
GENESIS_DIGEST = "0" * 64
MAX_WINDOW = timedelta(hours=24)
MAX_LINKS = 4096
# Not in PROTOCOL.md, which only says "integer >= 0": counters beyond int64 cannot be stored in
# a BIGINT column and no real counter gets there, so they are rejected here at the edge.
MAX_COUNTER = 2**63 - 1

_HEX64 = re.compile(r"[0-9a-f]{64}")
_STATEMENT_KEYS = frozenset({"_type", "subject", "predicateType", "predicate"})
_SUBJECT_KEYS = frozenset({"name", "digest"})
_DIGEST_KEYS = frozenset({"sha256"})
_PREDICATE_KEYS = frozenset(
    {"chip_id", "seq", "prev_digest", "window", "utilization", "energy_j", "interconnect"}
)
# The optional facility claim (PROTOCOL.md 2.1): reports without it stay valid byte for byte.
_PREDICATE_KEYS_WITH_FACILITY = _PREDICATE_KEYS | {"facility_id"}
MAX_FACILITY_ID = 2**31 - 1
_WINDOW_KEYS = frozenset({"start", "end"})
_LINK_KEYS = frozenset({"peer", "link", "tx_bytes", "rx_bytes"})
_SUBJECT_PREFIX = "chip:"


class LinkKind(StrEnum):
    """The interconnect a traffic counter was read from."""

    NVLINK = "nvlink"
    INFINITY_FABRIC = "infinity_fabric"
    INFINIBAND = "infiniband"
    ETHERNET = "ethernet"
    PCIE = "pcie"


def _chip_id(value: object, field: str) -> str:
    if not isinstance(value, str) or CHIP_ID_PATTERN.match(value) is None:
        raise FormatError(f"{field}: invalid chip id {value!r}")
    return value


def _counter(value: object, field: str, minimum: int = 0) -> int:
    # bool is an int subclass; JSON true must not count as 1.
    if type(value) is not int or not minimum <= value <= MAX_COUNTER:
        raise FormatError(f"{field}: want an integer in [{minimum}, 2^63-1], got {value!r}")
    return value


def _number(value: object, field: str, maximum: float) -> float:
    # float subclasses (e.g. numpy.float64 from an agent) are fine: the value is normalised.
    if not isinstance(value, float) and type(value) is not int:
        raise FormatError(f"{field}: want a number, got {value!r}")
    f = float(value)
    if not (math.isfinite(f) and 0.0 <= f <= maximum):
        raise FormatError(f"{field}: want a number in [0, {maximum}], got {value!r}")
    return f


def _hex64(value: object, field: str) -> str:
    if not isinstance(value, str) or _HEX64.fullmatch(value) is None:
        raise FormatError(f"{field}: want 64 lowercase hex characters, got {value!r}")
    return value


# A dict lookup is several times cheaper than LinkKind(value) on the per-link ingest path, and
# StrEnum members hash like their values, so both "nvlink" and LinkKind.NVLINK find the member.
_LINK_KINDS: dict[str, LinkKind] = {k.value: k for k in LinkKind}


def _link_kind(value: object, field: str) -> LinkKind:
    kind = _LINK_KINDS.get(value) if isinstance(value, str) else None
    if kind is None:
        raise FormatError(f"{field}: {value!r} is not one of {', '.join(_LINK_KINDS)}")
    return kind


@dataclass(frozen=True, slots=True)
class LinkTraffic:
    """Bytes exchanged with one peer chip over one kind of link during the window."""

    peer: str
    link: LinkKind
    tx_bytes: int
    rx_bytes: int

    def __post_init__(self) -> None:
        _chip_id(self.peer, "peer")
        # Accept the plain string value too, but always store the member.
        object.__setattr__(self, "link", _link_kind(self.link, "link"))
        _counter(self.tx_bytes, "tx_bytes")
        _counter(self.rx_bytes, "rx_bytes")


@dataclass(frozen=True, slots=True)
class UsageReport:
    """One chip's usage over one reporting window; validates itself when built."""

    chip_id: str
    key_id: str
    seq: int
    prev_digest: str
    window_start: datetime
    window_end: datetime
    utilization: float
    energy_j: float
    interconnect: tuple[LinkTraffic, ...]
    facility_id: int | None = None

    def __post_init__(self) -> None:
        _chip_id(self.chip_id, "chip_id")
        if self.facility_id is not None and (
            type(self.facility_id) is not int or not 1 <= self.facility_id <= MAX_FACILITY_ID
        ):
            raise FormatError(f"facility_id: want an integer >= 1, got {self.facility_id!r}")
        _hex64(self.key_id, "subject.digest.sha256 (key_id)")
        seq = _counter(self.seq, "seq", minimum=1)
        _hex64(self.prev_digest, "prev_digest")
        if (seq == 1) != (self.prev_digest == GENESIS_DIGEST):
            raise FormatError("prev_digest: must be 64 zeros exactly when seq is 1")
        start = require_utc_seconds(self.window_start, "window.start")
        end = require_utc_seconds(self.window_end, "window.end")
        if end <= start:
            raise FormatError("window: end must be later than start")
        if end - start > MAX_WINDOW:
            raise FormatError("window: longer than 24 hours")
        object.__setattr__(self, "utilization", _number(self.utilization, "utilization", 1.0))
        object.__setattr__(self, "energy_j", _number(self.energy_j, "energy_j", math.inf))
        links = self.interconnect
        if not isinstance(links, tuple):
            if not isinstance(links, list):
                raise FormatError("interconnect: want a tuple of LinkTraffic")
            links = tuple(links)
            object.__setattr__(self, "interconnect", links)
        if len(links) > MAX_LINKS:
            raise FormatError(f"interconnect: {len(links)} entries, at most {MAX_LINKS}")
        seen: set[tuple[str, LinkKind]] = set()
        for i, lt in enumerate(links):
            if not isinstance(lt, LinkTraffic):
                raise FormatError(f"interconnect[{i}]: want LinkTraffic")
            if lt.peer == self.chip_id:
                raise FormatError(f"interconnect[{i}].peer: a chip is not its own peer")
            pair = (lt.peer, lt.link)
            if pair in seen:
                raise FormatError(f"interconnect[{i}]: duplicate entry for {lt.peer} {lt.link}")
            seen.add(pair)


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    """A usage report whose envelope signature and subject key id have been checked."""

    report: UsageReport
    payload: bytes
    digest: str
    envelope: Envelope


def encode_statement(report: UsageReport) -> bytes:
    """The statement as agents send it: compact JSON, sorted keys."""
    predicate: dict[str, object] = {
        "chip_id": report.chip_id,
        "seq": report.seq,
        "prev_digest": report.prev_digest,
        "window": {
            "start": format_time(report.window_start),
            "end": format_time(report.window_end),
        },
        "utilization": report.utilization,
        "energy_j": report.energy_j,
        "interconnect": [
            {
                "peer": lt.peer,
                "link": lt.link.value,
                "tx_bytes": lt.tx_bytes,
                "rx_bytes": lt.rx_bytes,
            }
            for lt in report.interconnect
        ],
    }
    if report.facility_id is not None:
        predicate["facility_id"] = report.facility_id
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": _SUBJECT_PREFIX + report.chip_id, "digest": {"sha256": report.key_id}}
        ],
        "predicateType": USAGE_PREDICATE_TYPE,
        "predicate": predicate,
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def parse_statement(payload: bytes) -> UsageReport:
    """Parse statement bytes strictly; :class:`FormatError` naming the offending field."""
    obj = check_keys(loads_strict(payload, "statement"), _STATEMENT_KEYS, "statement")
    if obj["_type"] != STATEMENT_TYPE:
        raise FormatError(f"_type: want {STATEMENT_TYPE!r}, got {obj['_type']!r}")
    if obj["predicateType"] != USAGE_PREDICATE_TYPE:
        raise FormatError(
            f"predicateType: want {USAGE_PREDICATE_TYPE!r}, got {obj['predicateType']!r}"
        )
    subjects = obj["subject"]
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise FormatError("subject: want a list with exactly one subject")
    subject = check_keys(subjects[0], _SUBJECT_KEYS, "subject[0]")
    digest = check_keys(subject["digest"], _DIGEST_KEYS, "subject[0].digest")

    raw_pred = obj["predicate"]
    want = (
        _PREDICATE_KEYS_WITH_FACILITY
        if isinstance(raw_pred, dict) and "facility_id" in raw_pred
        else _PREDICATE_KEYS
    )
    pred = check_keys(raw_pred, want, "predicate")
    chip_id = _chip_id(pred["chip_id"], "predicate.chip_id")
    name = subject["name"]
    if not isinstance(name, str) or name != _SUBJECT_PREFIX + chip_id:
        raise FormatError(f"subject[0].name: want 'chip:{chip_id}', got {name!r}")
    window = check_keys(pred["window"], _WINDOW_KEYS, "predicate.window")
    raw_links = pred["interconnect"]
    if not isinstance(raw_links, list):
        raise FormatError("predicate.interconnect: want a list")
    if len(raw_links) > MAX_LINKS:  # checked before building thousands of objects
        raise FormatError(f"predicate.interconnect: {len(raw_links)} entries, at most {MAX_LINKS}")
    links = tuple(_parse_link(i, item) for i, item in enumerate(raw_links))
    return UsageReport(
        chip_id=chip_id,
        key_id=digest["sha256"],
        seq=pred["seq"],
        prev_digest=pred["prev_digest"],
        window_start=_parse_window_time(window["start"], "predicate.window.start"),
        window_end=_parse_window_time(window["end"], "predicate.window.end"),
        utilization=pred["utilization"],
        energy_j=pred["energy_j"],
        interconnect=links,
        facility_id=_facility_claim(pred["facility_id"]) if "facility_id" in pred else None,
    )


def _facility_claim(value: object) -> int:
    if type(value) is not int or not 1 <= value <= MAX_FACILITY_ID:
        raise FormatError(f"predicate.facility_id: want an integer >= 1, got {value!r}")
    return value


def _parse_window_time(value: Any, field: str) -> datetime:
    try:
        return parse_time(value)
    except FormatError as e:
        raise FormatError(f"{field}: {e}") from None


def _parse_link(i: int, item: Any) -> LinkTraffic:
    obj = check_keys(item, _LINK_KEYS, f"predicate.interconnect[{i}]")
    try:
        return LinkTraffic(obj["peer"], obj["link"], obj["tx_bytes"], obj["rx_bytes"])
    except FormatError as e:
        # LinkTraffic messages start with the field name; prefix where it sits in the statement.
        raise FormatError(f"predicate.interconnect[{i}].{e}") from None


def report_digest(payload: bytes) -> str:
    """The report digest: ``hex(SHA-256(payload bytes))``, the link of the per-chip hash chain."""
    return hashlib.sha256(payload).hexdigest()


def sign_report(report: UsageReport, key: PrivateKey) -> Envelope:
    """Encode and sign a report; :class:`KeyMismatchError` if it names another key."""
    if report.key_id != key.public_key.key_id:
        raise KeyMismatchError(
            f"report names key {report.key_id}, signing key is {key.public_key.key_id}"
        )
    return sign_envelope(encode_statement(report), INTOTO_PAYLOAD_TYPE, key)


def _check_envelope_shape(envelope: Envelope) -> None:
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise FormatError(
            f"payloadType: want {INTOTO_PAYLOAD_TYPE!r}, got {envelope.payload_type!r}"
        )
    if len(envelope.signatures) != 1:
        raise FormatError(
            f"signatures: a usage report carries exactly one, got {len(envelope.signatures)}"
        )


def open_report(envelope: Envelope) -> tuple[UsageReport, bytes]:
    """Parse a report envelope WITHOUT verifying its signature.

    For routing only (finding the chip, hence its key, by ``chip_id``); nothing returned here
    may be trusted until :func:`verify_report` has succeeded.
    """
    _check_envelope_shape(envelope)
    return parse_statement(envelope.payload), envelope.payload


@dataclass(frozen=True, slots=True)
class OpenedReport:
    """An envelope and the report it *claims* to carry, parsed once but not yet verified.

    Ingest needs the claimed ``chip_id`` to find the key, then the verified report; this type
    lets it parse the statement once instead of twice. Only :meth:`verify` makes it trustworthy.
    """

    envelope: Envelope
    claimed: UsageReport

    def verify(self, key: PublicKey) -> VerifiedReport:
        """Same checks and errors as :func:`verify_report`, without parsing the payload again."""
        payload = self.envelope.payload
        key.verify(self.envelope.signatures[0].sig, pae(self.envelope.payload_type, payload))
        if self.claimed.key_id != key.key_id:
            raise KeyMismatchError(
                f"statement subject names key {self.claimed.key_id}, verified with {key.key_id}"
            )
        return VerifiedReport(self.claimed, payload, report_digest(payload), self.envelope)


def open_envelope(envelope: Envelope) -> OpenedReport:
    """Check the envelope's shape and parse its statement, without verifying the signature."""
    _check_envelope_shape(envelope)
    return OpenedReport(envelope, parse_statement(envelope.payload))


def verify_report(envelope: Envelope, key: PublicKey) -> VerifiedReport:
    """Verify a report envelope under a chip key and parse it.

    Raises :class:`FormatError` (wrong payloadType, not exactly one signature, bad statement),
    :class:`SignatureError` (signature does not verify) or :class:`KeyMismatchError` (the
    statement's subject names another key than ``key``).
    """
    _check_envelope_shape(envelope)
    payload = envelope.payload
    key.verify(envelope.signatures[0].sig, pae(envelope.payload_type, payload))
    report = parse_statement(payload)
    if report.key_id != key.key_id:
        raise KeyMismatchError(
            f"statement subject names key {report.key_id}, verified with {key.key_id}"
        )
    return VerifiedReport(report, payload, report_digest(payload), envelope)
