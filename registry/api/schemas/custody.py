"""Chips' end of service, and custody transfers between operators."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from registry.api.schemas.common import ChipId, Id, UtcDatetime

__all__ = ["ChipStatusChange", "TransferFields"]


class ChipStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="why, for the log")


class TransferFields(BaseModel):
    """The payload of a transfer declaration (besides its ``type``)."""

    model_config = ConfigDict(extra="forbid")
    chip_id: ChipId
    from_facility_id: Id
    to_facility_id: Id
    transferred_at: UtcDatetime
