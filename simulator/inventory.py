"""What a simulated world holds: facilities (with their meter and the truth about their
power), location landmarks, chips (declared and true position, workload, claims, hash-chain
head), declared installations and declared clusters with their budgets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from attestation.keys import PrivateKey, PublicKey
from attestation.report import GENESIS_DIGEST, LinkKind, UsageReport
from simulator.catalog import ChipModel, Place, Site
from verifier.facts import HostPowerFact

__all__ = ["ChipSim", "ClusterDecl", "FacilitySim", "LandmarkSim", "Stay"]


@dataclass(slots=True)
class FacilitySim:
    """A declared facility, its meter, and the truth about its power (host overhead, PUE)."""

    facility_id: int
    site: Site
    operator_id: int
    meter_id: int
    meter_key: PrivateKey
    host_truth: HostPowerFact
    """What its hosts really draw beyond the GPUs."""
    true_pue: float
    host_declared: HostPowerFact | None = None
    """The host power model the operator declares (``None``: none declared)."""
    ghost_w: float = 0.0
    """Undeclared draw (ghost chips, hosts included) the meter sees, in W."""
    outages: set[int] = field(default_factory=set)
    """Windows in which the facility's agent cannot reach the registry (backlog sent later)."""


@dataclass(slots=True)
class LandmarkSim:
    landmark_id: int
    place: Place
    key: PrivateKey


@dataclass(slots=True)
class ChipSim:
    """One chip: what is declared about it, where it really is, what it does and claims."""

    chip_id: str
    model: ChipModel
    key: PrivateKey
    public_key: PublicKey
    facility_id: int
    """Where it is declared installed (its current installation)."""
    latitude: float
    longitude: float
    at_facility: int | None
    """Whose meter sees its power (``None``: not at any declared facility)."""
    source: str
    """Who delivers its reports (``operator:<id>``)."""
    util: float = 0.01
    peers: dict[str, tuple[LinkKind, float, float]] = field(default_factory=dict)
    """peer -> (link kind, tx bytes/s, rx bytes/s), while busy."""
    duty: float = 1.0
    """Fraction of the window its work runs (a job starting, ending or crash-looping inside
    the window): utilization, busy power and traffic all scale with it."""
    allowed_countries: frozenset[str] | None = None
    reporting: bool = True
    powered: bool = True
    claim_facility: int | None = None
    """The facility its reports name (``None``: its declared facility)."""
    claim_util: float | None = None
    """A lie about utilisation (energy then claimed at idle power)."""
    energy_factor: float = 1.0
    fake_peers: dict[str, tuple[LinkKind, float, float]] = field(default_factory=dict)
    hidden_peers: set[str] = field(default_factory=set)
    seq: int = 0
    prev: str = GENESIS_DIGEST
    last: UsageReport | None = None
    history: dict[int, bytes] | None = None
    """Signed envelopes by window, kept only for chips a scenario wants to replay."""


@dataclass(frozen=True, slots=True)
class Stay:
    """A declared installation ``[start, end)``."""

    chip_id: str
    facility_id: int
    start: datetime
    end: datetime | None = None


@dataclass(slots=True)
class ClusterDecl:
    """A declared training cluster, its budget and the threshold notifications filed for it."""

    cluster_id: int
    name: str
    facility_id: int
    chip_ids: frozenset[str]
    start: datetime
    end: datetime
    budget_flop: float | None
    notifications: list[tuple[float, datetime]]
    declared_at: datetime
    cumulative_flop: list[float] = field(default_factory=list)
    """The cluster's reported compute summed up to the end of each window (for ground truth)."""
    purpose: str = "training"
    """The purpose its operator declares."""
