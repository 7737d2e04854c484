"""Chip ids and the protocol's one timestamp shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from attestation.errors import FormatError
from attestation.identity import CHIP_ID_PATTERN, validate_chip_id
from attestation.timefmt import format_time, parse_declared_time, parse_time


@pytest.mark.parametrize("chip_id", ["a", "NV-H100-0001", "x" * 64, "0:1.2_3-4", "Z9"])
def test_valid_chip_ids(chip_id: str) -> None:
    assert validate_chip_id(chip_id) == chip_id
    assert CHIP_ID_PATTERN.match(chip_id)


@pytest.mark.parametrize(
    "chip_id", ["", "-a", ".a", "_a", "x" * 65, "a b", "a/b", "a\n", "é", "a+b", "\uff41"]
)
def test_invalid_chip_ids(chip_id: str) -> None:
    with pytest.raises(FormatError):
        validate_chip_id(chip_id)
    assert CHIP_ID_PATTERN.match(chip_id) is None


def test_time_roundtrip() -> None:
    dt = datetime(2026, 11, 22, 17, 0, 5, tzinfo=UTC)
    assert format_time(dt) == "2026-11-22T17:00:05Z"
    assert parse_time("2026-11-22T17:00:05Z") == dt
    assert parse_time("2026-11-22T17:00:05Z").tzinfo is UTC
    # Any zero-offset zone is UTC.
    assert format_time(dt.astimezone(timezone(timedelta(0)))) == "2026-11-22T17:00:05Z"


@pytest.mark.parametrize(
    "s",
    [
        "2026-11-22T17:00:05",
        "2026-11-22T17:00:05+00:00",
        "2026-11-22T17:00:05.5Z",
        "2026-11-22 17:00:05Z",
        "2026-11-22t17:00:05z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-22T17:00:60Z",
        "2026-11-22T17:00:05Z\n",
        "0000-01-01T00:00:00Z",
        "\uff12026-11-22T17:00:05Z",
    ],
)
def test_parse_time_rejects(s: str) -> None:
    with pytest.raises(FormatError):
        parse_time(s)


@pytest.mark.parametrize(
    "dt",
    [
        datetime(2026, 1, 1),  # naive
        datetime(2026, 1, 1, microsecond=1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_format_time_rejects(dt: datetime) -> None:
    with pytest.raises(FormatError):
        format_time(dt)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-22T17:00:05Z", "2026-11-22T17:00:05+00:00"),
        ("2026-11-22t17:00:05z", "2026-11-22T17:00:05+00:00"),
        ("2026-11-22T19:00:05+02:00", "2026-11-22T17:00:05+00:00"),
        ("2026-11-22T17:00:05.25-01:30", "2026-11-22T18:30:05.250000+00:00"),
    ],
)
def test_parse_declared_time_accepts_rfc3339_with_a_zone(text: str, utc: str) -> None:
    parsed = parse_declared_time(text)
    assert parsed.tzinfo is UTC
    assert parsed.isoformat() == utc


@pytest.mark.parametrize(
    "value",
    [
        1767225600,
        1767225600.0,
        None,
        "2026-11-22T17:00:05",
        "2026-11-22 17:00:05Z",
        "20261122T170005Z",
        "2026-W47-7T17:00:05Z",
        "2026-11-22T17:00:05.1234567Z",
        "2026-11-22T17:00:05+25:00",
        "2026-02-30T17:00:05Z",
        "2026-11-22T17:00:05+0200",
        "\uff12026-11-22T17:00:05Z",
        # In UTC before year 1 or after 9999: astimezone overflowed (OverflowError, not ours).
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_parse_declared_time_rejects_everything_else(value: object) -> None:
    with pytest.raises(FormatError):
        parse_declared_time(value)
