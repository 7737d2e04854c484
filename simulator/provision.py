"""Set up a simulated fleet in a running registry through its public HTTP API.

Every call is the one a real vendor, operator or administrator would make (PROTOCOL.md section
6): vendors and their roots, operators, per-vendor and per-operator tokens, facilities, chip
enrollment with endorsement certificates, installations and declared clusters. Installations
and clusters are declarations signed with the operator's key (DSSE).

:func:`provision` takes the agent fleet (:mod:`simulator.fleet`), whose agents then
report through :mod:`simulator.run`. A scenario world with the independent channels
(landmarks, meters, obligations) is set up by :mod:`simulator.world_provision`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx

from agents.client import JsonApi
from attestation.logentries import sign_cluster_declaration, sign_installation_declaration
from simulator.fleet import Fleet

__all__ = ["AdminApi", "ProvisionedFleet", "SetTime", "provision"]

SetTime = Callable[[datetime], None]
"""Told the simulated time before each request (a test registry's clock can follow it)."""


@dataclass(frozen=True)
class ProvisionedFleet:
    """A fleet and the registry ids and tokens created for it."""

    fleet: Fleet
    base_url: str
    vendor_ids: Mapping[str, int]
    vendor_tokens: Mapping[str, str]
    operator_ids: Mapping[str, int]
    operator_tokens: Mapping[str, str]
    facility_ids: Mapping[str, int]
    cluster_ids: Mapping[str, int]


#: The simulator's JSON calls are the CLI's: one client (:class:`agents.client.JsonApi`).
AdminApi = JsonApi


def provision(
    fleet: Fleet,
    base_url: str,
    admin_token: str,
    *,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> ProvisionedFleet:
    """Register everything in ``fleet`` with the registry at ``base_url``.

    Raises :class:`~agents.errors.RegistryRejected` if the registry refuses a step (for example
    because the fleet was provisioned already) and :class:`~agents.errors.TransportError` if it
    cannot be reached.
    """
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport) as h:
        api = AdminApi(h)
        vendor_ids: dict[str, int] = {}
        vendor_tokens: dict[str, str] = {}
        for name, vendor in fleet.vendors.items():
            doc = api.post(
                "/v1/vendors",
                admin_token,
                {"name": name, "root_certificate_pem": vendor.root_pem.decode()},
            )
            vendor_ids[name] = int(doc["id"])
            token = api.post(
                "/v1/tokens",
                admin_token,
                {"name": f"{name} enrollment", "role": "vendor", "vendor_id": vendor_ids[name]},
            )
            vendor_tokens[name] = str(token["token"])

        operator_ids: dict[str, int] = {}
        operator_tokens: dict[str, str] = {}
        for name, operator in fleet.operators.items():
            doc = api.post(
                "/v1/operators",
                admin_token,
                {
                    "name": name,
                    "country": operator.country,
                    "public_key": operator.key.public_key.to_b64(),
                },
            )
            operator_ids[name] = int(doc["id"])
            token = api.post(
                "/v1/tokens",
                admin_token,
                {"name": f"{name} agents", "role": "operator", "operator_id": operator_ids[name]},
            )
            operator_tokens[name] = str(token["token"])

        facility_ids: dict[str, int] = {}
        for slug, fac in fleet.facilities.items():
            doc = api.post(
                "/v1/facilities",
                operator_tokens[fac.operator],
                {
                    "name": fac.name,
                    "operator_id": operator_ids[fac.operator],
                    "country": fac.country,
                    "latitude": fac.latitude,
                    "longitude": fac.longitude,
                    "declared_power_kw": fac.declared_power_kw,
                    "pue": fac.pue,
                },
            )
            facility_ids[slug] = int(doc["id"])

        for chip in fleet.chips:
            vendor_name = chip.model.vendor
            api.post(
                "/v1/chips",
                vendor_tokens[vendor_name],
                {
                    "vendor_id": vendor_ids[vendor_name],
                    "certificate_pem": chip.certificate_pem.decode(),
                    "peak_tflops_bf16": chip.model.peak_tflops_bf16,
                    "tdp_watts": chip.model.tdp_watts,
                },
            )
            owner = fleet.facilities[chip.facility].operator
            api.post(
                "/v1/installations",
                operator_tokens[owner],
                sign_installation_declaration(
                    chip_id=chip.chip_id,
                    facility_id=facility_ids[chip.facility],
                    installed_at=fleet.installed_at,
                    key=fleet.operators[owner].key,
                ).to_dict(),
            )

        cluster_ids: dict[str, int] = {}
        for cluster in fleet.clusters:
            owner = fleet.facilities[cluster.facility].operator
            doc = api.post(
                "/v1/clusters",
                operator_tokens[owner],
                sign_cluster_declaration(
                    name=cluster.name,
                    purpose=cluster.purpose,
                    facility_id=facility_ids[cluster.facility],
                    chip_ids=cluster.chip_ids,
                    start=cluster.start,
                    end=cluster.end,
                    key=fleet.operators[owner].key,
                ).to_dict(),
            )
            cluster_ids[cluster.name] = int(doc["id"])

    return ProvisionedFleet(
        fleet=fleet,
        base_url=base_url,
        vendor_ids=vendor_ids,
        vendor_tokens=vendor_tokens,
        operator_ids=operator_ids,
        operator_tokens=operator_tokens,
        facility_ids=facility_ids,
        cluster_ids=cluster_ids,
    )


# -- a scenario world: declarations, independent channels, signed artifacts --------------------
