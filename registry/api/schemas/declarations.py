"""Facilities, chips, installations and declared clusters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from registry.api.schemas.common import ChipId, CountryCode, Id, Name, UtcDatetime

__all__ = [
    "MAX_BATCH_CHIPS",
    "ChipBatchCreate",
    "ChipBatchEnrolled",
    "ChipBatchItem",
    "ChipCreate",
    "ChipPublic",
    "ClusterCreate",
    "ClusterPublic",
    "FacilityCreate",
    "FacilityPublic",
    "GpuEvidenceIn",
    "HostPowerDeclaration",
    "InstallationCreate",
    "InstallationPublic",
    "SignedDeclaration",
]


class HostPowerDeclaration(BaseModel):
    """A facility's host power model: what its servers draw beyond their accelerators."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)
    gpus_per_host: int = Field(ge=1, le=72, description="GPU slots per host (server or rack)")
    idle_w: FiniteFloat = Field(ge=0, le=50_000, description="W per host with its GPUs idle")
    per_gpu_slot_w: FiniteFloat = Field(
        ge=0, le=2_000, description="constant W per GPU slot beyond the GPU (switches, NICs)"
    )
    busy_w: FiniteFloat = Field(
        ge=0, le=50_000, description="extra W per host with all its GPUs fully busy"
    )


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
    host_power: HostPowerDeclaration | None = Field(
        default=None, description="declared host power model (none: the policy's fixed share)"
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
    host_power: HostPowerDeclaration | None = None
    created_at: datetime
    operator_name: str | None = None


class GpuEvidenceIn(BaseModel):
    """GPU device evidence answering a registry GPU challenge (docs/PROTOCOL.md)."""

    model_config = ConfigDict(extra="forbid")
    nonce: str = Field(pattern=r"^[0-9a-f]{64}$", description="the registry nonce answered")
    report: str = Field(
        max_length=65_536, description="base64 SPDM attestation report (request || response)"
    )
    certificates: list[Annotated[str, Field(max_length=16_384)]] = Field(
        min_length=1,
        max_length=8,
        description="base64 DER certificates, attestation leaf first (the root may end it)",
    )


class ChipCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor_id: Id
    certificate_pem: str = Field(max_length=20_000, description="endorsement certificate, PEM")
    peak_tflops_bf16: FiniteFloat = Field(gt=0, le=100_000, description="dense BF16 peak, TFLOP/s")
    tdp_watts: FiniteFloat = Field(gt=0, le=10_000)
    gpu_evidence: GpuEvidenceIn | None = Field(
        default=None, description="GPU evidence binding the chip key to a genuine GPU"
    )


MAX_BATCH_CHIPS = 10_000


class ChipBatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate_pem: str = Field(max_length=20_000, description="endorsement certificate, PEM")
    peak_tflops_bf16: FiniteFloat = Field(gt=0, le=100_000, description="dense BF16 peak, TFLOP/s")
    tdp_watts: FiniteFloat = Field(gt=0, le=10_000)


class ChipBatchCreate(BaseModel):
    """Up to 10,000 chips of one vendor, enrolled all or nothing."""

    model_config = ConfigDict(extra="forbid")
    vendor_id: Id
    chips: list[ChipBatchItem] = Field(min_length=1, max_length=MAX_BATCH_CHIPS)


class ChipBatchEnrolled(BaseModel):
    enrolled: int
    chip_ids: list[str] = Field(description="in request order")
    first_log_index: int = Field(
        description="log index of the first enrollment record; item i is at first_log_index + i"
    )


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
    # End of service (PROTOCOL.md 6.1); None while in service.
    decommissioned_at: datetime | None = None
    decommission_reason: str | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    hardware_id: str | None = None
    hardware_attested_at: datetime | None = None


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
