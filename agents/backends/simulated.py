"""Simulated accelerators for the fleet simulator, the demo and tests.

Each simulated chip holds its own Ed25519 private key: the simulator's stand-in for a key that
on real hardware never leaves the chip. Telemetry is a pure function of the chip's current
workload and the window length, so a simulated run is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agents.backends.base import Accelerator, WindowTelemetry
from attestation.keys import PrivateKey, PublicKey
from attestation.report import LinkKind, LinkTraffic

__all__ = ["PeerRate", "SimulatedAccelerator", "SimulatedBackend", "Workload"]


@dataclass(frozen=True)
class PeerRate:
    """Sustained traffic with one peer chip over one link kind, in bytes per second."""

    peer: str
    link: LinkKind
    tx_bytes_per_s: float
    rx_bytes_per_s: float


@dataclass(frozen=True)
class Workload:
    """What a simulated chip is doing: busy fraction, mean power draw and its peers."""

    utilization: float = 0.0
    power_w: float = 0.0
    peers: tuple[PeerRate, ...] = field(default=())


class SimulatedAccelerator:
    """A chip whose telemetry follows a settable :class:`Workload`."""

    def __init__(
        self, chip_id: str, model: str, key: PrivateKey, workload: Workload | None = None
    ) -> None:
        self._chip_id = chip_id
        self._model = model
        self._key = key
        self._public_key = key.public_key
        self.workload = workload if workload is not None else Workload()

    @property
    def chip_id(self) -> str:
        """The chip's serial."""
        return self._chip_id

    @property
    def model(self) -> str:
        """The chip model name."""
        return self._model

    @property
    def public_key(self) -> PublicKey:
        """The chip's public key (the one its endorsement certificate names)."""
        return self._public_key

    def read_window(self, start: datetime, end: datetime) -> WindowTelemetry:
        """Telemetry of the current workload over ``[start, end)``, deterministic."""
        seconds = max((end - start).total_seconds(), 0.0)
        w = self.workload
        links = tuple(
            LinkTraffic(
                peer=p.peer,
                link=p.link,
                tx_bytes=int(p.tx_bytes_per_s * seconds),
                rx_bytes=int(p.rx_bytes_per_s * seconds),
            )
            for p in w.peers
        )
        return WindowTelemetry(
            utilization=min(max(w.utilization, 0.0), 1.0),
            energy_j=round(w.power_w * seconds, 3),
            interconnect=links,
        )

    def sign(self, message: bytes) -> bytes:
        """Sign with the simulated in-chip key."""
        return self._key.sign(message)


class SimulatedBackend:
    """A fixed set of simulated chips; chips can be silenced to simulate going dark."""

    name = "simulated"

    def __init__(self, accelerators: Iterable[SimulatedAccelerator]) -> None:
        self._accelerators = list(accelerators)
        self._silenced: set[str] = set()

    def silence(self, chip_ids: Iterable[str]) -> None:
        """Stop reporting for these chips (as if their host lost them or they were moved)."""
        self._silenced.update(chip_ids)

    def discover(self) -> Sequence[Accelerator]:
        """The chips that are not silenced, in construction order."""
        return [a for a in self._accelerators if a.chip_id not in self._silenced]
