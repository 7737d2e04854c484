"""RFC 3339 timestamps as the protocol writes them: UTC, ``Z`` suffix.

Three shapes, one module: report windows are whole seconds (:func:`parse_time`); the registry's
log records carry its clock, so a fraction when there is one (:func:`parse_timestamp`); what an
operator signs may carry an offset (:func:`parse_declared_time`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from attestation.errors import FormatError

__all__ = [
    "format_time",
    "parse_declared_time",
    "parse_time",
    "parse_timestamp",
    "require_utc_seconds",
    "timestamp",
]

# One exact shape only: lenient parsers (fromisoformat, dateutil) accept offsets, fractions and
# spaces, and two verifiers must never disagree about which window a signed report covers.
# [0-9], not \d: \d also matches non-ASCII digits such as U+FF12, which int() then accepts.
_TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
# A log record's time: the same, or with exactly six fraction digits when the microseconds are
# not zero, so each instant has exactly one text (the record bytes are hashed into the log).
_STAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{6}))?Z"
)
_ZERO = timedelta(0)
# What an operator may write in a declaration it signs (installations, clusters, notices): RFC 3339
# with an explicit zone, optional fraction. A JSON string only: a number is not a time.
_DECLARED_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Parsed times by their text: reports of one window share its two timestamps, so ingest parses
# each once. Bounded; datetimes are immutable, so sharing them is safe.
_PARSED: dict[str, datetime] = {}
_PARSED_MAX = 4096


def require_utc_seconds(dt: datetime, what: str = "time") -> datetime:
    """Check that ``dt`` is a timezone-aware UTC datetime with whole seconds; return it.

    Raises :class:`FormatError` naming ``what`` otherwise.
    """
    if type(dt) is datetime and dt.tzinfo is UTC and not dt.microsecond:
        return dt  # the common case, without the utcoffset() call below
    if not isinstance(dt, datetime):
        raise FormatError(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() != _ZERO:
        raise FormatError(f"{what} must be timezone-aware UTC, got {dt!r}")
    if dt.microsecond:
        raise FormatError(f"{what} must have whole seconds, got {dt.isoformat()}")
    return dt


def format_time(dt: datetime) -> str:
    """Render a UTC, whole-second datetime as ``YYYY-MM-DDTHH:MM:SSZ``."""
    require_utc_seconds(dt)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"
    )


def parse_time(s: str) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` into an aware UTC datetime; :class:`FormatError` otherwise."""
    if type(s) is str:
        parsed = _PARSED.get(s)
        if parsed is not None:
            return parsed
    m = _TIME_RE.fullmatch(s) if isinstance(s, str) else None
    if m is None:
        raise FormatError(f"invalid time {s!r}: want RFC 3339 UTC like 2026-11-22T17:00:00Z")
    year, month, day, hour, minute, second = map(int, m.groups())
    try:
        parsed = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as e:  # e.g. month 13, Feb 30, leap second 60
        raise FormatError(f"invalid time {s!r}: {e}") from None
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[s] = parsed
    return parsed


def parse_declared_time(value: object, what: str = "time") -> datetime:
    """Parse a timestamp an operator wrote in a declaration; return it as aware UTC.

    The one rule shared by the registry (its request schemas) and the partner's audit (replaying
    the signed declarations from the log), so both accept exactly the same declarations: an
    RFC 3339 string with ``Z`` or a numeric offset and at most microseconds. Numbers, naive times,
    week dates, spaces and other ISO 8601 variants raise :class:`FormatError`.
    """
    if not isinstance(value, str) or _DECLARED_RE.fullmatch(value) is None:
        raise FormatError(
            f"invalid {what} {value!r}: want an RFC 3339 string with a zone, "
            "like 2026-11-22T17:00:00Z"
        )
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as e:  # e.g. month 13, Feb 30, offset +25:00
        raise FormatError(f"invalid {what} {value!r}: {e}") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999, e.g. 0001-01-01T00:00:00+01:00
        raise FormatError(f"invalid {what} {value!r}: out of the representable range") from None


def timestamp(value: datetime) -> str:
    """A log record's time: RFC 3339 UTC with ``Z``; six fraction digits only when the
    microseconds are not zero, so the text is canonical per instant."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise FormatError(f"timestamp must be a timezone-aware datetime, got {value!r}")
    utc = value.astimezone(UTC)
    if not utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: object, what: str = "timestamp") -> datetime:
    """Inverse of :func:`timestamp`: exactly its output shape, else :class:`FormatError`."""
    m = _STAMP_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise FormatError(
            f"invalid {what} {text!r}: want RFC 3339 UTC like 2026-11-22T17:00:00Z "
            "(or with six fraction digits, not all zero)"
        )
    year, month, day, hour, minute, second = map(int, m.groups()[:6])
    micro = int(m.group(7) or 0)
    if m.group(7) is not None and not micro:
        raise FormatError(f"invalid {what} {text!r}: a zero fraction is written without one")
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError as e:  # e.g. month 13, Feb 30, leap second 60
        raise FormatError(f"invalid {what} {text!r}: {e}") from None
