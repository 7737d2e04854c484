"""Shared field types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import AfterValidator, Field, StringConstraints

__all__ = ["INT64_MAX", "ChipId", "Count", "CountryCode", "Id", "Name", "UtcDatetime"]

# Every integer the API takes (path, query or body) is one of the two types below: both
# databases store integers in 64 bits, so a larger one is refused as 422 before any query.
INT64_MAX = 2**63 - 1
Id = Annotated[int, Ge(1), Le(INT64_MAX)]
"""A database id (vendor, operator, facility, finding, ...): 1 .. 2**63-1."""
Count = Annotated[int, Ge(0), Le(INT64_MAX)]
"""An offset, log index or tree size: 0 .. 2**63-1."""


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        msg = "timestamps must carry a timezone (use Z for UTC)"
        raise ValueError(msg)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]
CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}$"), Field(description="ISO 3166-1 alpha-2")
]
ChipId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
