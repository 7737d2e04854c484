"""Facilities, chips, installations and declared clusters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from registry.api.schemas.common import ChipId, CountryCode, Id, Name, UtcDatetime

__all__ = [
    "ChipCreate",
    "ChipPublic",
    "ClusterCreate",
    "ClusterPublic",
    "FacilityCreate",
    "FacilityPublic",
    "InstallationCreate",
    "InstallationPublic",
    "SignedDeclaration",
]


class FacilityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator_id: Id
    name: Name
    country: CountryCode
    latitude: FiniteFloat = Field(ge=-90, le=90)
    longitude: FiniteFloat = Field(ge=-180, le=180)
    declared_power_kw: FiniteFloat = Field(gt=0, description="declared facility power capacity, kW")
    pue: FiniteFloat = Field(default=1.3, ge=1.0, le=3.0, description="power usage effectiveness")
    non_it_load_kw: FiniteFloat = Field(
        default=0.0, ge=0, description="declared constant non-IT load beyond PUE, kW"
    )


class FacilityPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    operator_id: int
    name: str
    country: str
    latitude: float
    longitude: float
    declared_power_kw: float
    pue: float
    non_it_load_kw: float
    created_at: datetime


class ChipCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor_id: Id
    certificate_pem: str = Field(max_length=20_000, description="endorsement certificate, PEM")
    peak_tflops_bf16: FiniteFloat = Field(gt=0, le=100_000, description="dense BF16 peak, TFLOP/s")
    tdp_watts: FiniteFloat = Field(gt=0, le=10_000)


class ChipPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    chip_id: str
    vendor_id: int
    model: str
    key_id: str
    peak_tflops_bf16: float
    tdp_watts: float
    enrolled_at: datetime
    last_seq: int
    last_window_end: datetime | None


class InstallationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chip_id: ChipId
    facility_id: Id
    installed_at: UtcDatetime


class InstallationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    chip_id: str
    facility_id: int
    installed_at: datetime
    removed_at: datetime | None
    declared_by_operator_id: int


class ClusterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facility_id: Id
    name: Name
    purpose: str = Field(min_length=1, max_length=2000)
    chip_ids: list[ChipId] = Field(min_length=1, max_length=200_000)
    start: UtcDatetime
    end: UtcDatetime


class DsseSignature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keyid: str = ""
    sig: str


class SignedDeclaration(BaseModel):
    """A DSSE envelope signed by the operator's registered key. Its payload (payloadType
    ``application/vnd.chipreg.declaration+json``) is the declaration JSON with a ``type``
    field; see docs/PROTOCOL.md."""

    model_config = ConfigDict(extra="forbid")
    payload: str = Field(description="base64 of the declaration JSON")
    payloadType: str
    signatures: list[DsseSignature] = Field(min_length=1, max_length=16)


class ClusterPublic(BaseModel):
    id: int
    operator_id: int
    facility_id: int
    name: str
    purpose: str
    start: datetime
    end: datetime
    chip_ids: list[str]
