"""Protocols every accelerator backend implements (simulated chips, NVIDIA NVML, ...).

The agent only talks to these Protocols, so a new vendor backend is a new module, never a
change to the agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from attestation.gpu import GpuEvidence
from attestation.keys import PublicKey
from attestation.report import LinkTraffic

__all__ = [
    "Accelerator",
    "AcceleratorBackend",
    "SupportsGpuEvidence",
    "SupportsSampling",
    "WindowTelemetry",
]


@dataclass(frozen=True)
class WindowTelemetry:
    """What one chip measured over one reporting window.

    ``utilization`` is the mean busy fraction in [0, 1], ``energy_j`` the energy in joules,
    ``interconnect`` one entry per (peer chip, link kind) with byte counts for the window.
    """

    utilization: float
    energy_j: float
    interconnect: tuple[LinkTraffic, ...]


class Accelerator(Protocol):
    """One chip: its identity, its telemetry, and its signing key (held by the chip)."""

    @property
    def chip_id(self) -> str:
        """The manufacturer's serial (docs/PROTOCOL.md 1.3)."""
        ...

    @property
    def model(self) -> str:
        """The chip model, e.g. ``H100-SXM5-80GB``."""
        ...

    @property
    def public_key(self) -> PublicKey:
        """The chip's endorsed Ed25519 public key."""
        ...

    def read_window(self, start: datetime, end: datetime) -> WindowTelemetry:
        """Return the chip's telemetry for the window ``[start, end)``."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (a DSSE PAE) with the chip key; the agent never sees the key."""
        ...


class AcceleratorBackend(Protocol):
    """A source of accelerators on this host."""

    @property
    def name(self) -> str:
        """Short backend name as used on the command line (``simulated``, ``nvml``)."""
        ...

    def discover(self) -> Sequence[Accelerator]:
        """Return the accelerators this host currently reports for."""
        ...


@runtime_checkable
class SupportsSampling(Protocol):
    """A backend whose utilization is a mean of samples the agent loop takes periodically."""

    def sample(self) -> None:
        """Take one utilization sample of every accelerator."""
        ...


@runtime_checkable
class SupportsGpuEvidence(Protocol):
    """A GPU that can sign SPDM measurements over a nonce (docs/PROTOCOL.md section 11)."""

    def attestation_evidence(self, nonce: bytes) -> GpuEvidence:
        """The attestation report over the 32-byte SPDM ``nonce`` and the certificate chain.

        Raises :class:`agents.errors.GpuEvidenceUnavailable` saying why when it cannot.
        """
        ...
