"""GPU challenges (hardware-attested enrollment, docs/PROTOCOL.md "GPU evidence")."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GpuChallengeCreate", "GpuChallengePublic", "ReattestationPublic"]


class GpuChallengeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chip_public_key: str = Field(
        min_length=44, max_length=44, description="base64(raw Ed25519 key) of the chip to enroll"
    )


class GpuChallengePublic(BaseModel):
    nonce: str = Field(description="registry nonce, hex: quote it back with the evidence")
    purpose: str
    chip_public_key: str
    spdm_nonce: str = Field(
        description="hex SHA-256(binding || chip key || nonce): the nonce the GPU must sign"
    )
    issued_at: datetime
    expires_at: datetime


class ReattestationPublic(BaseModel):
    log_index: int = Field(description="index of the gpu_attestation record")
    hardware_id: str = Field(description="the GPU that answered")
    same_device: bool = Field(description="whether it is the GPU the chip enrolled with")
