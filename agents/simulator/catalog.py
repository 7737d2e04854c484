"""Peak specifications of the simulated chip models (vendor datasheets, dense BF16)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from attestation.report import LinkKind

__all__ = ["B200", "CATALOG", "H100", "H200", "MI300X", "ChipModel"]


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


# NVIDIA H100 SXM5 datasheet: 989 TFLOP/s dense BF16 (1,979 with sparsity), up to 700 W.
H100 = ChipModel("H100-SXM5-80GB", "NVIDIA", 989.0, 700.0, 70.0, LinkKind.NVLINK)
# H200 SXM: same compute die as H100, more HBM3e; 989 TFLOP/s dense BF16, up to 700 W.
H200 = ChipModel("H200-SXM-141GB", "NVIDIA", 989.0, 700.0, 75.0, LinkKind.NVLINK)
# B200 (HGX B200): 2.25 PFLOP/s dense BF16 per GPU, 1,000 W.
B200 = ChipModel("B200-SXM-192GB", "NVIDIA", 2250.0, 1000.0, 100.0, LinkKind.NVLINK)
# AMD Instinct MI300X: 1,307.4 TFLOP/s dense BF16, 750 W, Infinity Fabric between GPUs.
MI300X = ChipModel("MI300X-OAM-192GB", "AMD", 1307.0, 750.0, 90.0, LinkKind.INFINITY_FABRIC)

CATALOG: Mapping[str, ChipModel] = MappingProxyType({m.name: m for m in (H100, H200, B200, MI300X)})
