"""Shared field types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints

from attestation.errors import FormatError
from attestation.timefmt import parse_declared_time

__all__ = ["ChipId", "CountryCode", "Name", "UtcDatetime"]


def _declared_time(value: object) -> datetime:
    # The partner's audit parses the same declarations with the same function: a timestamp the
    # registry accepts can never be one the audit rejects (a number, say, which pydantic's lax
    # datetime would take as a Unix time).
    try:
        return parse_declared_time(value, "timestamp")
    except FormatError as e:
        raise ValueError(str(e)) from None


UtcDatetime = Annotated[datetime, BeforeValidator(_declared_time)]
CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}$"), Field(description="ISO 3166-1 alpha-2")
]
ChipId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
