"""A deterministic simulated fleet, with planted treaty violations and their ground truth.

Everything (keys, chip ids, placements, workloads) follows from :attr:`FleetSpec.seed`, so a
scenario can be re-run and its findings compared against :attr:`Fleet.ground_truth`.

The fleet: two vendors (NVIDIA, AMD) with root certificates; two operators; four facilities in
three countries; one declared training cluster; honest inference chips (light traffic, few
peers); idle chips. Planted: an undeclared cluster above the demo policy's threshold
(``undeclared_cluster``) and chips that go silent after a given window (``gone_dark``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agents.backends.simulated import PeerRate, Workload
from agents.errors import AgentError
from attestation.certs import create_vendor_root, issue_chip_certificate
from attestation.keys import PrivateKey
from attestation.report import LinkKind
from simulator.catalog import B200, H100, H200, MI300X, ChipModel

__all__ = [
    "DeclaredCluster",
    "Fleet",
    "FleetSpec",
    "PlantedViolation",
    "SimChip",
    "SimFacility",
    "SimOperator",
    "SimVendor",
    "build_fleet",
]

_GB = 1e9


@dataclass(frozen=True)
class FleetSpec:
    """Sizes and seed of a simulated fleet. Cluster sizes are multiples of ``gpus_per_node``."""

    seed: int = 2026
    declared_cluster_chips: int = 64
    undeclared_cluster_chips: int = 32
    inference_chips_per_facility: int = 24
    idle_chips_per_facility: int = 8
    dark_chips: int = 5
    dark_after_window: int = 3
    gpus_per_node: int = 8
    epoch: datetime = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SimVendor:
    """A manufacturer: root key and self-signed root certificate."""

    name: str
    key: PrivateKey
    root_pem: bytes


@dataclass(frozen=True)
class SimOperator:
    """A datacenter operator and its declaration-signing key."""

    name: str
    country: str
    key: PrivateKey


@dataclass(frozen=True)
class SimFacility:
    """A datacenter site."""

    slug: str
    name: str
    operator: str
    country: str
    latitude: float
    longitude: float
    declared_power_kw: float
    pue: float


@dataclass(frozen=True)
class SimChip:
    """A chip: identity, endorsement, where it is installed and what it does.

    ``role`` is one of ``training`` (declared cluster), ``undeclared_cluster``, ``inference``
    and ``idle``.
    """

    chip_id: str
    model: ChipModel
    key: PrivateKey
    certificate_pem: bytes
    facility: str
    role: str
    workload: Workload


@dataclass(frozen=True)
class DeclaredCluster:
    """A training cluster the operator declares to the registry."""

    name: str
    purpose: str
    facility: str
    chip_ids: tuple[str, ...]
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PlantedViolation:
    """Ground truth for one planted violation.

    ``kind`` is ``undeclared_cluster`` or ``gone_dark``; ``from_window`` is the index of the
    first simulated window in which the violation is visible (0 = from the start).
    """

    kind: str
    chip_ids: tuple[str, ...]
    facility: str
    operator: str
    from_window: int
    detail: str


@dataclass(frozen=True)
class Fleet:
    """A complete simulated fleet; :attr:`ground_truth` lists what a verifier should find."""

    spec: FleetSpec
    vendors: Mapping[str, SimVendor]
    operators: Mapping[str, SimOperator]
    facilities: Mapping[str, SimFacility]
    chips: tuple[SimChip, ...]
    clusters: tuple[DeclaredCluster, ...]
    ground_truth: tuple[PlantedViolation, ...]
    installed_at: datetime

    def chip(self, chip_id: str) -> SimChip:
        """The chip with this id (KeyError if none)."""
        for chip in self.chips:
            if chip.chip_id == chip_id:
                return chip
        raise KeyError(chip_id)

    def chips_at(self, facility: str) -> list[SimChip]:
        """Chips installed at a facility, in fleet order."""
        return [c for c in self.chips if c.facility == facility]

    def dark_chip_ids(self) -> frozenset[str]:
        """Chips planted to stop reporting."""
        return frozenset(
            cid for v in self.ground_truth if v.kind == "gone_dark" for cid in v.chip_ids
        )


def _key(seed: int, label: str) -> PrivateKey:
    return PrivateKey.from_seed(hashlib.sha256(f"chipreg-sim:{seed}:{label}".encode()).digest())


# (slug, name, operator, country, latitude, longitude)
_SITES = (
    ("us-tx-abilene", "Abilene Campus 1", "Aurora Compute", "US", 32.4487, -99.7331),
    ("us-va-ashburn", "Ashburn DC7", "Aurora Compute", "US", 39.0438, -77.4874),
    ("fi-hamina", "Hamina North Hall", "Borealis Cloud", "FI", 60.5693, 27.1878),
    ("ie-dublin", "Dublin Grange Castle", "Borealis Cloud", "IE", 53.3147, -6.4370),
)
_OPERATORS = (("Aurora Compute", "US"), ("Borealis Cloud", "FI"))


class _Builder:
    """Mutable scratch state while a fleet is assembled; discarded afterwards."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.not_before = spec.epoch - timedelta(days=365)
        self.not_after = spec.epoch + timedelta(days=3650)
        self.vendors: dict[str, SimVendor] = {}
        for name in ("NVIDIA", "AMD"):
            key = _key(spec.seed, f"vendor:{name}")
            root = create_vendor_root(
                name, key, not_before=self.not_before, not_after=self.not_after
            )
            self.vendors[name] = SimVendor(name=name, key=key, root_pem=root)
        self.serial = 1_654_922_000_000 + self.rng.randrange(1_000_000) * 1000
        # chip id -> (model, facility, role), in creation order; workloads are added later.
        self.chips: dict[str, tuple[ChipModel, str, str]] = {}
        self.peers: dict[str, list[PeerRate]] = {}
        self.util: dict[str, float] = {}

    def new_chips(self, model: ChipModel, facility: str, role: str, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            self.serial += self.rng.randrange(1, 40)
            prefix = model.name.split("-")[0]
            chip_id = f"{prefix}-{self.serial}"
            self.chips[chip_id] = (model, facility, role)
            self.peers[chip_id] = []
            ids.append(chip_id)
        return ids

    def link(self, a: str, b: str, kind: LinkKind, gbytes_per_s: float) -> None:
        """Traffic between a and b, the same bytes seen from both ends (a's tx = b's rx)."""
        skew = self.rng.uniform(0.9, 1.1)
        ab, ba = gbytes_per_s * _GB * skew, gbytes_per_s * _GB / skew
        self.peers[a].append(PeerRate(b, kind, tx_bytes_per_s=ab, rx_bytes_per_s=ba))
        self.peers[b].append(PeerRate(a, kind, tx_bytes_per_s=ba, rx_bytes_per_s=ab))

    def training_topology(self, ids: Sequence[str], scale_up: LinkKind) -> None:
        """All-to-all within each node, rail-aligned ring across nodes over InfiniBand."""
        per_node = self.spec.gpus_per_node
        nodes = [ids[i : i + per_node] for i in range(0, len(ids), per_node)]
        for node in nodes:
            for i, a in enumerate(node):
                for b in node[i + 1 :]:
                    self.link(a, b, scale_up, self.rng.uniform(40, 60))  # ~400 Gbit/s
        if len(nodes) > 1:
            for n, node in enumerate(nodes):
                nxt = nodes[(n + 1) % len(nodes)]
                if len(nodes) == 2 and n == 1:
                    break  # two nodes: one ring edge per rail, not two
                for rank, a in enumerate(node):
                    self.link(a, nxt[rank], LinkKind.INFINIBAND, self.rng.uniform(20, 30))
        for cid in ids:
            self.util[cid] = self.rng.uniform(0.85, 0.97)

    def inference(self, ids: Sequence[str], scale_up: LinkKind) -> None:
        """Half the chips serve in tensor-parallel pairs with light traffic, half alone."""
        paired = ids[: len(ids) // 2]
        for a, b in zip(paired[::2], paired[1::2], strict=False):
            self.link(a, b, scale_up, self.rng.uniform(0.3, 1.5))  # < 12 Gbit/s
        for cid in ids:
            self.util[cid] = self.rng.uniform(0.25, 0.7)

    def idle(self, ids: Sequence[str]) -> None:
        for cid in ids:
            self.util[cid] = self.rng.uniform(0.0, 0.02)

    def workload(self, chip_id: str) -> Workload:
        model = self.chips[chip_id][0]
        util = self.util[chip_id]
        power = model.idle_watts + (model.tdp_watts - model.idle_watts) * util * 0.95
        return Workload(
            utilization=round(util, 4),
            power_w=round(power, 1),
            peers=tuple(self.peers[chip_id]),
        )


def build_fleet(spec: FleetSpec | None = None) -> Fleet:
    """Build the fleet described by ``spec``; the same spec always gives the same fleet."""
    spec = spec or FleetSpec()
    for n in (spec.declared_cluster_chips, spec.undeclared_cluster_chips):
        if n % spec.gpus_per_node:
            raise AgentError(f"cluster size {n} is not a multiple of {spec.gpus_per_node}")
    if spec.dark_chips > spec.inference_chips_per_facility:
        raise AgentError("more dark chips than inference chips at the facility")
    b = _Builder(spec)
    inf, idle = spec.inference_chips_per_facility, spec.idle_chips_per_facility

    training = b.new_chips(H100, "us-tx-abilene", "training", spec.declared_cluster_chips)
    b.training_topology(training, H100.scale_up_link)
    b.idle(b.new_chips(H100, "us-tx-abilene", "idle", idle))

    ashburn_h100 = b.new_chips(H100, "us-va-ashburn", "inference", inf)
    b.inference(ashburn_h100, H100.scale_up_link)
    b.inference(b.new_chips(B200, "us-va-ashburn", "inference", inf // 2), B200.scale_up_link)
    b.idle(b.new_chips(B200, "us-va-ashburn", "idle", idle))

    hidden = b.new_chips(H200, "fi-hamina", "undeclared_cluster", spec.undeclared_cluster_chips)
    b.training_topology(hidden, H200.scale_up_link)
    b.inference(b.new_chips(H200, "fi-hamina", "inference", inf // 2), H200.scale_up_link)
    b.idle(b.new_chips(H200, "fi-hamina", "idle", idle))

    b.inference(b.new_chips(MI300X, "ie-dublin", "inference", inf), MI300X.scale_up_link)
    b.idle(b.new_chips(MI300X, "ie-dublin", "idle", idle))

    chips: list[SimChip] = []
    for index, (chip_id, (model, facility, role)) in enumerate(b.chips.items()):
        vendor = b.vendors[model.vendor]
        key = _key(spec.seed, f"chip:{chip_id}")
        cert = issue_chip_certificate(
            root_pem=vendor.root_pem,
            root_key=vendor.key,
            chip_id=chip_id,
            model=model.name,
            chip_key=key.public_key,
            not_before=b.not_before,
            not_after=b.not_after,
            serial_number=1_000_000 + index,
        )
        chips.append(SimChip(chip_id, model, key, cert, facility, role, b.workload(chip_id)))

    operators = {
        name: SimOperator(name=name, country=country, key=_key(spec.seed, f"operator:{name}"))
        for name, country in _OPERATORS
    }
    facilities: dict[str, SimFacility] = {}
    for slug, name, operator, country, lat, lon in _SITES:
        watts = sum(c.model.tdp_watts for c in chips if c.facility == slug)
        # Declared capacity with headroom over the chips' board power (hosts, network).
        facilities[slug] = SimFacility(
            slug, name, operator, country, lat, lon, round(watts * 1.5 / 1000, 1), 1.3
        )

    dark = tuple(ashburn_h100[-spec.dark_chips :]) if spec.dark_chips else ()
    hidden_ops = spec.undeclared_cluster_chips * H200.peak_ops_per_s
    ground_truth = [
        PlantedViolation(
            kind="undeclared_cluster",
            chip_ids=tuple(hidden),
            facility="fi-hamina",
            operator="Borealis Cloud",
            from_window=0,
            detail=(
                f"{len(hidden)} x {H200.name} ({hidden_ops:.2e} dense BF16 OP/s) networked "
                "all-to-all over NVLink and in a ring over InfiniBand above 100 Gbit/s, "
                "with no cluster declaration"
            ),
        )
    ]
    if dark:
        ground_truth.append(
            PlantedViolation(
                kind="gone_dark",
                chip_ids=dark,
                facility="us-va-ashburn",
                operator="Aurora Compute",
                from_window=spec.dark_after_window,
                detail=f"{len(dark)} installed chips stop reporting after window "
                f"{spec.dark_after_window - 1}",
            )
        )
    cluster = DeclaredCluster(
        name="abilene-pretrain-1",
        purpose="pre-training of a declared frontier model run",
        facility="us-tx-abilene",
        chip_ids=tuple(training),
        start=spec.epoch,
        end=spec.epoch + timedelta(days=730),
    )
    return Fleet(
        spec=spec,
        vendors=b.vendors,
        operators=operators,
        facilities=facilities,
        chips=tuple(chips),
        clusters=(cluster,),
        ground_truth=tuple(ground_truth),
        installed_at=spec.epoch,
    )
