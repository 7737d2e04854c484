"""The inventory read API: chip and cluster pages with totals, time series, power balance,
decoded log entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from registry.api.schemas.declarations import ChipPublic

__all__ = [
    "AccessPage",
    "AccessPublic",
    "AggregatesPublic",
    "BalanceWindowPublic",
    "ChipListItem",
    "ChipSeries",
    "ChipsPage",
    "ClusterListItem",
    "ClustersPage",
    "CountryAggregatePublic",
    "DecodedEntryPublic",
    "ExportPublic",
    "FacilityAggregatePublic",
    "PowerBalancePublic",
    "SeriesPoint",
    "SignerPublic",
]


class ChipListItem(ChipPublic):
    vendor: str
    facility_id: int | None
    facility_name: str | None
    country: str | None
    operator_id: int | None
    operator_name: str | None
    installed_at: datetime | None


class ChipsPage(BaseModel):
    total: int
    limit: int
    offset: int
    chips: list[ChipListItem]


class ClusterListItem(BaseModel):
    id: int
    name: str
    purpose: str
    operator_id: int
    operator_name: str
    facility_id: int
    facility_name: str
    country: str
    start: datetime
    end: datetime
    chip_count: int
    chip_ids: list[str]


class ClustersPage(BaseModel):
    total: int
    limit: int
    offset: int
    clusters: list[ClusterListItem]


class SeriesPoint(BaseModel):
    seq: int
    window_start: datetime
    window_end: datetime
    utilization: float
    energy_j: float
    log_index: int


class ChipSeries(BaseModel):
    chip_id: str
    points: list[SeriesPoint]


class BalanceWindowPublic(BaseModel):
    window_start: datetime
    window_end: datetime
    reports: int
    reported_chip_energy_j: float
    non_it_load_j: float
    expected_j: float
    metered_j: float | None
    capacity_j: float


class PowerBalancePublic(BaseModel):
    facility_id: int
    facility_name: str
    operator_name: str
    declared_power_kw: float
    pue: float
    non_it_load_kw: float
    windows: list[BalanceWindowPublic]


class SignerPublic(BaseModel):
    keyid: str
    holder_type: str | None
    holder_id: str | None
    holder_name: str | None
    verified: bool


class DecodedEntryPublic(BaseModel):
    index: int
    kind: str
    leaf_hash: str
    created_at: datetime
    payload_type: str | None
    fields: dict[str, Any]
    signers: list[SignerPublic]
    error: str | None


class AccessPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    token_id: int
    actor_name: str
    actor_role: str
    at: datetime
    channel: str
    path: str
    query: str


class AccessPage(BaseModel):
    total: int
    limit: int
    offset: int
    accesses: list[AccessPublic]


class FacilityAggregatePublic(BaseModel):
    facility_id: int
    facility_name: str
    operator_name: str
    country: str
    declared_power_kw: float
    chips: int
    peak_tflops_bf16: float


class CountryAggregatePublic(BaseModel):
    country: str
    facilities: int
    chips: int
    peak_tflops_bf16: float


class AggregatesPublic(BaseModel):
    facilities: list[FacilityAggregatePublic]
    countries: list[CountryAggregatePublic]


class ExportPublic(BaseModel):
    kind: str
    format: str
    filename: str
    media_type: str
    checkpoint_size: int
    content: str
    signature: str
