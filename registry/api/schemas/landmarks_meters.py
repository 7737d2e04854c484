"""Landmarks, meters, challenges, measurements and readings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from registry.api.schemas.common import ChipId, Id, Name

__all__ = [
    "ChallengeCreate",
    "ChallengePublic",
    "LandmarkCreate",
    "LandmarkPublic",
    "LoggedPublic",
    "MeterCreate",
    "MeterPublic",
    "SignedEnvelope",
]

PublicKeyB64 = Field(min_length=44, max_length=44, description="base64(raw Ed25519 public key)")


class LandmarkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    public_key: str = PublicKeyB64
    latitude: FiniteFloat = Field(ge=-90, le=90)
    longitude: FiniteFloat = Field(ge=-180, le=180)


class LandmarkPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    key_id: str
    latitude: float
    longitude: float
    created_at: datetime


class MeterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    facility_id: Id
    public_key: str = PublicKeyB64


class MeterPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    facility_id: int
    key_id: str
    created_at: datetime


class ChallengeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chip_id: ChipId


class ChallengePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    nonce: str
    landmark_id: int
    chip_id: str
    issued_at: datetime
    expires_at: datetime


SignedEnvelope = dict[str, Any]


class LoggedPublic(BaseModel):
    id: int
    digest: str
    log_index: int
