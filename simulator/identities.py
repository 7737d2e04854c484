"""The keys and certificates a simulated world's parties hold, derived from the world's seed.

Each chip vendor has a root key and a self-signed root certificate, each operator a key that
signs its declarations, and each chip an endorsement certificate from its vendor's root over
the chip's own key (:class:`~simulator.inventory.ChipSim` holds that key). The same world always
gives the same identities, so a world can be provisioned into a registry (:mod:`.provision`) and
checked offline against what was declared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from attestation.certs import create_vendor_root, issue_chip_certificate
from attestation.keys import PrivateKey
from simulator.inventory import ChipSim
from simulator.world import World

__all__ = ["CERT_FROM", "CERT_TO", "Identities", "VendorRoot", "identities"]

CERT_FROM = datetime(2025, 1, 1, tzinfo=UTC)
CERT_TO = datetime(2036, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class VendorRoot:
    """A manufacturer: its root key and self-signed root certificate (PEM)."""

    name: str
    key: PrivateKey
    root_pem: bytes


@dataclass(frozen=True)
class Identities:
    """The vendors' roots by vendor name and the operators' keys by the world's operator id."""

    vendors: Mapping[str, VendorRoot]
    operator_keys: Mapping[int, PrivateKey]

    def certificate(self, chip: ChipSim) -> bytes:
        """The chip's endorsement certificate (PEM), issued by its vendor's root."""
        vendor = self.vendors[chip.model.vendor]
        return issue_chip_certificate(
            root_pem=vendor.root_pem,
            root_key=vendor.key,
            chip_id=chip.chip_id,
            model=chip.model.name,
            chip_key=chip.public_key,
            not_before=CERT_FROM,
            not_after=CERT_TO,
        )


def _key(world: World, label: str) -> PrivateKey:
    return PrivateKey.from_seed(
        hashlib.sha256(f"chipreg-provision:{world.seed}:{label}".encode()).digest()
    )


def identities(world: World) -> Identities:
    """The identities of ``world``'s vendors (one per chip vendor) and operators."""
    vendors = {}
    for name in sorted({c.model.vendor for c in world.chips.values()}):
        key = _key(world, f"vendor:{name}")
        pem = create_vendor_root(name, key, not_before=CERT_FROM, not_after=CERT_TO)
        vendors[name] = VendorRoot(name, key, pem)
    operator_keys = {oid: _key(world, f"operator:{oid}") for oid in world.operators.values()}
    return Identities(vendors=vendors, operator_keys=operator_keys)
