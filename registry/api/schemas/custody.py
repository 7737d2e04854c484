"""Chips' end of service, and custody transfers between operators."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# A transfer's payload has no schema here: it is read by attestation.transfer.open_transfer,
# the parser the partner's audit uses (canonical ``...Z`` times only), so the two never differ.
__all__ = ["ChipStatusChange"]


class ChipStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="why, for the log")
