"""Chip identifiers (PROTOCOL.md section 1.3), shared by certificates and usage reports."""

from __future__ import annotations

import re

from attestation.errors import FormatError

__all__ = ["CHIP_ID_PATTERN", "validate_chip_id"]

# The protocol rule is ``^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$``. ``\Z`` replaces ``$`` because
# ``$`` also matches before a trailing newline, so ``CHIP_ID_PATTERN.match("id\n")`` would
# otherwise accept an id that is not one.
CHIP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")


def validate_chip_id(s: str) -> str:
    """Return ``s`` unchanged if it is a valid chip id, else raise :class:`FormatError`."""
    if not isinstance(s, str) or CHIP_ID_PATTERN.match(s) is None:
        raise FormatError(
            f"invalid chip id {s!r}: want 1-64 of [A-Za-z0-9._:-], alphanumeric first"
        )
    return s
