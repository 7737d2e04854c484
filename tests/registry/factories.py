"""Build a small registry world over the real API: vendor, operator, facility, chips."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from attestation.certs import create_vendor_root, issue_chip_certificate
from attestation.dsse import Envelope
from attestation.keys import PrivateKey
from attestation.logentries import sign_declaration
from attestation.report import (
    GENESIS_DIGEST,
    LinkKind,
    LinkTraffic,
    UsageReport,
    report_digest,
    sign_report,
)
from registry.auth import Role
from tests.conftest import LiveRegistry

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
VALID_FROM = datetime(2025, 1, 1, tzinfo=UTC)
VALID_TO = datetime(2036, 1, 1, tzinfo=UTC)


def key(label: str) -> PrivateKey:
    return PrivateKey.from_seed(hashlib.sha256(label.encode()).digest())


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


@dataclass
class SimChip:
    chip_id: str
    key: PrivateKey
    seq: int = 0
    prev: str = GENESIS_DIGEST
    window_end: datetime = T0

    def report(self, *, peers: tuple[LinkTraffic, ...] = (), utilization: float = 0.5) -> Envelope:
        """The next report in this chip's chain (the chain advances)."""
        report = UsageReport(
            chip_id=self.chip_id,
            key_id=self.key.public_key.key_id,
            seq=self.seq + 1,
            prev_digest=self.prev,
            window_start=self.window_end,
            window_end=self.window_end + WINDOW,
            utilization=utilization,
            energy_j=utilization * 700 * WINDOW.total_seconds(),
            interconnect=peers,
        )
        envelope = sign_report(report, self.key)
        self.seq, self.prev, self.window_end = (
            report.seq,
            report_digest(envelope.payload),
            report.window_end,
        )
        return envelope


@dataclass
class World:
    registry: LiveRegistry
    vendor_id: int
    vendor_token: str
    operator_id: int
    operator_token: str
    facility_id: int
    root_pem: bytes
    root_key: PrivateKey
    operator_name: str = "Abilene Compute"
    chips: dict[str, SimChip] = field(default_factory=dict)

    @property
    def operator_key(self) -> PrivateKey:
        return operator_key(self.operator_name)

    def certificate(
        self, chip_id: str, chip_key: PrivateKey, model: str = "H100-SXM5-80GB"
    ) -> bytes:
        return issue_chip_certificate(
            root_pem=self.root_pem,
            root_key=self.root_key,
            chip_id=chip_id,
            model=model,
            chip_key=chip_key.public_key,
            not_before=VALID_FROM,
            not_after=VALID_TO,
        )

    def enroll(
        self, chip_id: str, *, install: bool = True, facility_id: int | None = None
    ) -> SimChip:
        chip_key = key(f"chip:{chip_id}")
        with self.registry.client(self.vendor_token) as http:
            ok(
                http.post(
                    "/v1/chips",
                    json={
                        "vendor_id": self.vendor_id,
                        "certificate_pem": self.certificate(chip_id, chip_key).decode(),
                        "peak_tflops_bf16": 989.0,
                        "tdp_watts": 700.0,
                    },
                ),
                201,
            )
        if install:
            self.install(chip_id, facility_id=facility_id)
        chip = SimChip(chip_id, chip_key)
        self.chips[chip_id] = chip
        return chip

    def install(self, chip_id: str, *, facility_id: int | None = None) -> None:
        """Declare ``chip_id`` installed at one of this operator's facilities (the first one)."""
        with self.registry.client(self.operator_token) as http:
            ok(
                http.post(
                    "/v1/installations",
                    json=signed(
                        "installation",
                        {
                            "chip_id": chip_id,
                            "facility_id": facility_id or self.facility_id,
                            "installed_at": "2026-02-01T00:00:00Z",
                        },
                        self.operator_key,
                    ),
                ),
                201,
            )

    def post(self, envelopes: list[Envelope], token: str | None = None) -> httpx.Response:
        body = b'{"reports":[' + b",".join(e.to_json() for e in envelopes) + b"]}"
        with self.registry.client(token or self.operator_token) as http:
            return http.post(
                "/v1/reports/batch", content=body, headers={"Content-Type": "application/json"}
            )


def operator_key(name: str) -> PrivateKey:
    """The signing key of the operator ``name`` created by :func:`add_operator`."""
    return key(f"op:{name}")


def signed(kind: str, fields: dict[str, Any], signer: PrivateKey) -> dict[str, Any]:
    """A declaration body (DSSE envelope JSON) signed by ``signer``."""
    return sign_declaration(kind, fields, signer).to_dict()


def add_operator(registry: LiveRegistry, name: str, country: str = "US") -> tuple[int, str, int]:
    """An operator with a token and one facility: (operator_id, token, facility_id)."""
    with registry.client(registry.admin_token) as http:
        op = ok(
            http.post(
                "/v1/operators",
                json={
                    "name": name,
                    "country": country,
                    "public_key": key(f"op:{name}").public_key.to_b64(),
                },
            ),
            201,
        )
    token = registry.token(Role.OPERATOR, operator_id=op["id"])
    with registry.client(token) as http:
        facility = ok(
            http.post(
                "/v1/facilities",
                json={
                    "operator_id": op["id"],
                    "name": f"{name} site 1",
                    "country": country,
                    "latitude": 32.45,
                    "longitude": -99.73,
                    "declared_power_kw": 20_000,
                },
            ),
            201,
        )
    return op["id"], token, facility["id"]


def make_world(registry: LiveRegistry, vendor: str = "NVIDIA") -> World:
    root_key = key(f"vendor:{vendor}")
    root_pem = create_vendor_root(vendor, root_key, not_before=VALID_FROM, not_after=VALID_TO)
    with registry.client(registry.admin_token) as http:
        v = ok(
            http.post(
                "/v1/vendors", json={"name": vendor, "root_certificate_pem": root_pem.decode()}
            ),
            201,
        )
    vendor_token = registry.token(Role.VENDOR, vendor_id=v["id"])
    operator_id, operator_token, facility_id = add_operator(registry, "Abilene Compute")
    return World(
        registry=registry,
        vendor_id=v["id"],
        vendor_token=vendor_token,
        operator_id=operator_id,
        operator_token=operator_token,
        facility_id=facility_id,
        root_pem=root_pem,
        root_key=root_key,
    )


def link(peer: str, gbytes: float = 10.0) -> LinkTraffic:
    return LinkTraffic(
        peer=peer, link=LinkKind.NVLINK, tx_bytes=int(gbytes * 1e9), rx_bytes=int(gbytes * 1e9)
    )
