"""What the simulator knows of the world: chip models (vendor datasheets, dense BF16 peaks),
datacenter sites, location landmarks and undeclared places, all with real coordinates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from attestation.report import LinkKind

__all__ = [
    "B200",
    "CATALOG",
    "H100",
    "H200",
    "LANDMARKS",
    "MI300X",
    "PLACES",
    "SITES",
    "ChipModel",
    "Place",
    "Site",
]


@dataclass(frozen=True)
class ChipModel:
    """One accelerator model: vendor, peak dense BF16 throughput, board power, scale-up link."""

    name: str
    vendor: str
    peak_tflops_bf16: float
    tdp_watts: float
    idle_watts: float
    scale_up_link: LinkKind

    @property
    def peak_ops_per_s(self) -> float:
        """Peak dense BF16 operations per second."""
        return self.peak_tflops_bf16 * 1e12

    def board_power_w(self, utilization: float) -> float:
        """Mean board power at ``utilization`` (0-1): idle power plus 95% of the range up to
        the TDP in proportion to the busy time."""
        return self.idle_watts + (self.tdp_watts - self.idle_watts) * utilization * 0.95


# NVIDIA H100 SXM5 datasheet: 989 TFLOP/s dense BF16 (1,979 with sparsity), up to 700 W.
H100 = ChipModel("H100-SXM5-80GB", "NVIDIA", 989.0, 700.0, 70.0, LinkKind.NVLINK)
# H200 SXM: same compute die as H100, more HBM3e; 989 TFLOP/s dense BF16, up to 700 W.
H200 = ChipModel("H200-SXM-141GB", "NVIDIA", 989.0, 700.0, 75.0, LinkKind.NVLINK)
# B200 (HGX B200): 2.25 PFLOP/s dense BF16 per GPU, 1,000 W.
B200 = ChipModel("B200-SXM-192GB", "NVIDIA", 2250.0, 1000.0, 100.0, LinkKind.NVLINK)
# AMD Instinct MI300X: 1,307.4 TFLOP/s dense BF16, 750 W, Infinity Fabric between GPUs.
MI300X = ChipModel("MI300X-OAM-192GB", "AMD", 1307.0, 750.0, 90.0, LinkKind.INFINITY_FABRIC)

CATALOG: Mapping[str, ChipModel] = MappingProxyType({m.name: m for m in (H100, H200, B200, MI300X)})


@dataclass(frozen=True)
class Site:
    """A datacenter campus the scenario simulator can place a facility at (real coordinates).

    ``pue`` is the declared power usage effectiveness (typical published figures for the
    operator's climate); ``non_it_kw`` a declared constant non-IT load beyond PUE.
    """

    slug: str
    name: str
    operator: str
    country: str
    latitude: float
    longitude: float
    pue: float
    non_it_kw: float


@dataclass(frozen=True)
class Place:
    """A point on the map that is not a declared facility (where a smuggled chip may end up)."""

    name: str
    country: str
    latitude: float
    longitude: float


# Datacenter campuses in several countries (approximate public coordinates of the towns).
SITES: tuple[Site, ...] = (
    Site("us-va-ashburn", "Ashburn DC7", "Aurora Compute", "US", 39.0438, -77.4874, 1.25, 40.0),
    Site("us-tx-abilene", "Abilene Campus 1", "Aurora Compute", "US", 32.4487, -99.7331, 1.3, 60.0),
    Site("fi-hamina", "Hamina North Hall", "Borealis Cloud", "FI", 60.5693, 27.1878, 1.1, 20.0),
    Site("ie-dublin", "Dublin Grange Castle", "Borealis Cloud", "IE", 53.3147, -6.4370, 1.2, 30.0),
    Site("de-frankfurt", "Frankfurt Ostend", "Rhein Rechen", "DE", 50.1109, 8.6821, 1.3, 30.0),
    Site("jp-inzai", "Inzai Campus", "Kanto Compute", "JP", 35.8322, 140.1461, 1.35, 30.0),
    Site("sg-jurong", "Jurong West", "Straits AI", "SG", 1.3404, 103.7090, 1.4, 25.0),
    Site("ae-abudhabi", "Abu Dhabi Khazna", "Gulf Frontier", "AE", 24.4539, 54.3773, 1.45, 40.0),
)

# Location landmarks: servers at internet exchanges and university campuses.
LANDMARKS: tuple[Place, ...] = (
    Place("Ashburn IX", "US", 39.0300, -77.4700),
    Place("Dallas IX", "US", 32.7767, -96.7970),
    Place("Chicago", "US", 41.8781, -87.6298),
    Place("Seattle", "US", 47.6062, -122.3321),
    Place("London LINX", "GB", 51.5072, -0.1276),
    Place("Frankfurt DE-CIX", "DE", 50.1109, 8.6821),
    Place("Helsinki", "FI", 60.1699, 24.9384),
    Place("Stockholm", "SE", 59.3293, 18.0686),
    Place("Dublin INEX", "IE", 53.3498, -6.2603),
    Place("Tokyo JPIX", "JP", 35.6762, 139.6503),
    Place("Singapore SGIX", "SG", 1.3521, 103.8198),
    Place("Hong Kong HKIX", "HK", 22.3193, 114.1694),
    Place("Dubai UAE-IX", "AE", 25.2048, 55.2708),
    Place("Mumbai", "IN", 19.0760, 72.8777),
)

# Where chips turn up when they leave their declared facility without a declaration.
PLACES: tuple[Place, ...] = (
    Place("Shenzhen", "CN", 22.5431, 114.0579),
    Place("Moscow", "RU", 55.7558, 37.6173),
    Place("Tehran", "IR", 35.6892, 51.3890),
)
