"""Shared field types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BeforeValidator, Field, StringConstraints

from attestation.errors import FormatError
from attestation.timefmt import parse_declared_time

__all__ = [
    "EARLIEST",
    "INT32_MAX",
    "INT64_MAX",
    "LATEST",
    "ChipId",
    "Count",
    "CountryCode",
    "Id",
    "Name",
    "UtcDatetime",
    "request_time",
]

# Every integer the API takes (path, query or body) is one of the two types below, bounded by
# the database column it ends up compared with (ids are INTEGER, 32 bits on PostgreSQL; log
# indexes and sizes BIGINT), so a larger one is refused as 422 before any query.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
Id = Annotated[int, Ge(1), Le(INT32_MAX)]
"""A database id (vendor, operator, facility, finding, cluster, ...): 1 .. 2**31-1."""
Count = Annotated[int, Ge(0), Le(INT64_MAX)]
"""An offset, log index or tree size: 0 .. 2**63-1."""


# Every timestamp the API takes lies in this range: far enough from datetime's own limits
# (years 1 and 9999) that converting to UTC and adding the verifier's windows cannot overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def request_time(value: object) -> datetime:
    """A timestamp a request gives, as aware UTC in [1970, 9000); ValueError otherwise."""
    # The partner's audit parses the same declarations with the same function: a timestamp the
    # registry accepts can never be one the audit rejects (a number, say, which pydantic's lax
    # datetime would take as a Unix time).
    try:
        utc = parse_declared_time(value, "timestamp")
    except FormatError as e:
        raise ValueError(str(e)) from None
    if not EARLIEST <= utc < LATEST:
        msg = "timestamps must lie in [1970-01-01T00:00:00Z, 9000-01-01T00:00:00Z)"
        raise ValueError(msg)
    return utc


UtcDatetime = Annotated[datetime, BeforeValidator(request_time)]
CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}$"), Field(description="ISO 3166-1 alpha-2")
]
ChipId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
