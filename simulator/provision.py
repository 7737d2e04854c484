"""Set up a simulated :class:`~simulator.world.World` in a running registry over its public API.

Every call is the one a real vendor, operator or administrator would make (PROTOCOL.md section
6): vendors and their roots, operators, per-vendor and per-operator tokens, facilities with
their PUE and non-IT load, chip enrollment with endorsement certificates, installations and
declared clusters (declarations signed with the operator's key, DSSE), and the independent
channels: landmarks and meters with their own keys and tokens, transfer conditions, cluster
budgets and threshold notifications. The keys and certificates are the world's
(:mod:`.identities`).

Then either real agents report the world's chips (:func:`simulator.run.run_windows`, the demo),
or :func:`deliver` posts the world's simulated artifacts (chip-signed usage reports,
meter-signed readings) in the order the registry would receive them; :func:`measure_locations`
runs live landmark challenges: the registry issues each nonce, the chip answers it through the
agent (:func:`agents.challenge.answer_challenge`), and the landmark signs a round trip timed
from the chip's true position (:mod:`.physics`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx

from agents.backends.simulated import SimulatedAccelerator
from agents.challenge import answer_challenge
from agents.client import JsonApi, RegistryClient
from agents.errors import AgentError, RegistryRejected
from attestation.dsse import Envelope
from attestation.landmark import LandmarkMeasurement, sign_measurement
from attestation.logentries import sign_cluster_declaration, sign_installation_declaration
from attestation.meter import open_reading, sign_reading
from attestation.timefmt import format_time
from simulator.artifacts import Artifacts, Delivery, Reading
from simulator.identities import Identities, identities
from simulator.inventory import ChipSim
from simulator.physics import great_circle_km, simulated_rtt_ms
from simulator.world import World
from verifier.facts import HostPowerFact

__all__ = [
    "AdminApi",
    "DeliveryStats",
    "ProvisionedWorld",
    "SetTime",
    "deliver",
    "honest_chips",
    "measure_locations",
    "provision_world",
]

SetTime = Callable[[datetime], None]
"""Told the simulated time before each request (a test registry's clock can follow it)."""

#: The simulator's JSON calls are the CLI's: one client (:class:`agents.client.JsonApi`).
AdminApi = JsonApi


@dataclass(frozen=True)
class ProvisionedWorld:
    """A scenario world and what the registry created for it.

    Facility ids are the world's own (its chips sign them into their reports), so a world is
    provisioned into a registry that has no facilities yet. Landmarks, meters and clusters are
    mapped from the world's ids to the registry's. ``operator_ids`` (the registry's) and
    ``operator_tokens`` are keyed by the world's report source (``operator:<id>``).
    """

    world: World
    base_url: str
    admin_token: str
    landmark_token: str
    meter_token: str
    vendor_ids: Mapping[str, int]
    vendor_tokens: Mapping[str, str]
    operator_ids: Mapping[str, int]
    operator_tokens: Mapping[str, str]
    landmark_ids: Mapping[int, int]
    meter_ids: Mapping[int, int]
    cluster_ids: Mapping[int, int]


@dataclass(frozen=True)
class DeliveryStats:
    """What :func:`deliver` posted. ``reports_acknowledged`` includes resent copies the
    registry already held; ``rejected`` counts refusals by code (reports and readings)."""

    reports_acknowledged: int
    readings_accepted: int
    rejected: Mapping[str, int]


def _tick(set_time: SetTime | None, at: datetime) -> None:
    if set_time is not None:
        set_time(at)


def provision_world(
    world: World,
    base_url: str,
    admin_token: str,
    *,
    set_time: SetTime | None = None,
    declare_chips: bool = True,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> ProvisionedWorld:
    """Declare everything about ``world`` in the registry at ``base_url``, as of its epoch.

    Vendors (a root per chip vendor) and operators with their tokens; facilities with their
    coordinates, PUE and non-IT load; chips with endorsement certificates; every declared
    installation in time order; transfer conditions (by the chip's vendor, effective from the
    epoch); declared clusters with their budgets and threshold notifications; landmarks and
    meters with their keys, and one landmark and one meter token. Call it after
    :meth:`World.simulate` so installations declared during the run are included.
    ``declare_chips=False`` stops after the accounts and facilities (chips, installations,
    transfer conditions and clusters left to the caller: the load tests enrol 100,000 chips
    in bulk), landmarks and meters included.

    Raises :class:`~agents.errors.AgentError` if the registry already has facilities (the
    world's facility ids would not match), :class:`~agents.errors.RegistryRejected` if it
    refuses a step and :class:`~agents.errors.TransportError` if it cannot be reached.
    """
    _tick(set_time, world.epoch)
    ids = identities(world)
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport) as h:
        api = AdminApi(h)
        vendor_ids: dict[str, int] = {}
        vendor_tokens: dict[str, str] = {}
        for name, vendor in ids.vendors.items():
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

        operator_ids: dict[int, int] = {}
        operator_tokens: dict[int, str] = {}
        for name, world_id in world.operators.items():
            country = next(
                f.site.country for f in world.facilities.values() if f.operator_id == world_id
            )
            doc = api.post(
                "/v1/operators",
                admin_token,
                {
                    "name": name,
                    "country": country,
                    "public_key": ids.operator_keys[world_id].public_key.to_b64(),
                },
            )
            operator_ids[world_id] = int(doc["id"])
            token = api.post(
                "/v1/tokens",
                admin_token,
                {"name": f"{name} agents", "role": "operator", "operator_id": int(doc["id"])},
            )
            operator_tokens[world_id] = str(token["token"])

        for fid, facility in sorted(world.facilities.items()):
            site = facility.site
            chips_w = sum(c.model.tdp_watts for c in world.chips.values() if c.facility_id == fid)
            doc = api.post(
                "/v1/facilities",
                operator_tokens[facility.operator_id],
                {
                    "operator_id": operator_ids[facility.operator_id],
                    "name": site.name,
                    "country": site.country,
                    "latitude": site.latitude,
                    "longitude": site.longitude,
                    "declared_power_kw": max(1.0, chips_w * site.pue * 1.5 / 1000),
                    "pue": site.pue,
                    "non_it_load_kw": site.non_it_kw,
                    **(
                        {}
                        if facility.host_declared is None
                        else {"host_power": _host_power(facility.host_declared)}
                    ),
                },
            )
            if int(doc["id"]) != fid:
                raise AgentError(
                    f"the registry gave facility {site.name!r} id {doc['id']}, not the world's "
                    f"{fid}: provision a world into a registry without facilities"
                )

        cluster_ids: dict[int, int] = {}
        if declare_chips:
            _declare_chips(
                api,
                world,
                ids,
                vendor_ids=vendor_ids,
                vendor_tokens=vendor_tokens,
                operator_tokens=operator_tokens,
            )
            cluster_ids = _declare_clusters(
                api, world, ids, operator_tokens=operator_tokens, set_time=set_time
            )

        landmark_ids: dict[int, int] = {}
        for lid, mark in sorted(world.landmarks.items()):
            doc = api.post(
                "/v1/landmarks",
                admin_token,
                {
                    "name": mark.place.name,
                    "public_key": mark.key.public_key.to_b64(),
                    "latitude": mark.place.latitude,
                    "longitude": mark.place.longitude,
                },
            )
            landmark_ids[lid] = int(doc["id"])
        meter_ids: dict[int, int] = {}
        for fid, facility in sorted(world.facilities.items()):
            doc = api.post(
                "/v1/meters",
                admin_token,
                {
                    "name": f"{facility.site.name} main meter",
                    "facility_id": fid,
                    "public_key": facility.meter_key.public_key.to_b64(),
                },
            )
            meter_ids[facility.meter_id] = int(doc["id"])
        landmark_token = api.post(
            "/v1/tokens", admin_token, {"name": "simulated landmarks", "role": "landmark"}
        )["token"]
        meter_token = api.post(
            "/v1/tokens", admin_token, {"name": "simulated meters", "role": "meter"}
        )["token"]

    return ProvisionedWorld(
        world=world,
        base_url=base_url,
        admin_token=admin_token,
        landmark_token=str(landmark_token),
        meter_token=str(meter_token),
        vendor_ids=vendor_ids,
        vendor_tokens=vendor_tokens,
        operator_ids={f"operator:{w}": i for w, i in operator_ids.items()},
        operator_tokens={f"operator:{w}": t for w, t in operator_tokens.items()},
        landmark_ids=landmark_ids,
        meter_ids=meter_ids,
        cluster_ids=cluster_ids,
    )


def _declare_chips(
    api: AdminApi,
    world: World,
    ids: Identities,
    *,
    vendor_ids: Mapping[str, int],
    vendor_tokens: Mapping[str, str],
    operator_tokens: Mapping[int, str],
) -> None:
    """Enrol every chip, declare every installation in time order, then the transfer
    conditions."""
    for chip in world.chips.values():
        api.post(
            "/v1/chips",
            vendor_tokens[chip.model.vendor],
            {
                "vendor_id": vendor_ids[chip.model.vendor],
                "certificate_pem": ids.certificate(chip).decode(),
                "peak_tflops_bf16": chip.model.peak_tflops_bf16,
                "tdp_watts": chip.model.tdp_watts,
            },
        )
    for stay in sorted(world.stays, key=lambda s: s.start):
        owner = world.facilities[stay.facility_id].operator_id
        api.post(
            "/v1/installations",
            operator_tokens[owner],
            sign_installation_declaration(
                chip_id=stay.chip_id,
                facility_id=stay.facility_id,
                installed_at=stay.start,
                key=ids.operator_keys[owner],
            ).to_dict(),
        )
    for chip in world.chips.values():
        if chip.allowed_countries is not None:
            api.post(
                f"/v1/chips/{chip.chip_id}/transfer-conditions",
                vendor_tokens[chip.model.vendor],
                {
                    "allowed_countries": sorted(chip.allowed_countries),
                    "effective_from": format_time(world.epoch),
                },
            )


def _declare_clusters(
    api: AdminApi,
    world: World,
    ids: Identities,
    *,
    operator_tokens: Mapping[int, str],
    set_time: SetTime | None,
) -> dict[int, int]:
    """Declare every cluster with its budget and threshold notifications; registry ids by the
    world's cluster id."""
    cluster_ids: dict[int, int] = {}
    for cid, decl in sorted(world.clusters.items()):
        owner = world.facilities[decl.facility_id].operator_id
        owner_token = operator_tokens[owner]
        doc = api.post(
            "/v1/clusters",
            owner_token,
            sign_cluster_declaration(
                name=decl.name,
                purpose=decl.purpose,
                facility_id=decl.facility_id,
                chip_ids=sorted(decl.chip_ids),
                start=decl.start,
                end=decl.end,
                key=ids.operator_keys[owner],
            ).to_dict(),
        )
        cluster_ids[cid] = int(doc["id"])
        if decl.budget_flop is not None:
            api.request(
                "PUT",
                f"/v1/clusters/{cluster_ids[cid]}/budget",
                owner_token,
                {"compute_budget_flop": decl.budget_flop},
            )
        for threshold, notified_at in decl.notifications:
            _tick(set_time, max(notified_at, world.epoch))
            api.post(
                f"/v1/clusters/{cluster_ids[cid]}/notifications",
                owner_token,
                {"threshold_flop": threshold, "notified_at": format_time(notified_at)},
            )
    return cluster_ids


def _reading_for_registry(provisioned: ProvisionedWorld, reading: Reading) -> bytes:
    """The meter's signed reading, re-signed by the same meter key if the registry numbered
    the meter differently from the world."""
    registry_id = provisioned.meter_ids[reading.meter_id]
    if registry_id == reading.meter_id:
        return reading.envelope
    parsed = open_reading(Envelope.from_json(reading.envelope))
    facility = provisioned.world.facilities[parsed.facility_id]
    return sign_reading(replace(parsed, meter_id=registry_id), facility.meter_key).to_json()


def deliver(
    provisioned: ProvisionedWorld,
    artifacts: Artifacts,
    *,
    set_time: SetTime | None = None,
    batch_size: int = 500,
    timeout: float = 30.0,
) -> DeliveryStats:
    """Post a simulated run's usage reports and meter readings in the order they arrive.

    Reports go in batches per sender (the operator token of the delivery's ``source``); reports
    arriving within a minute of each other are sent together, earliest sender first, and every
    meter reading is posted when it arrives. ``set_time`` is told each request's arrival time.
    """
    if not 1 <= batch_size <= 1000:
        raise AgentError("batch_size must be in 1..1000")
    timeline: list[tuple[datetime, int, Delivery | Reading]] = [
        (d.received_at, d.order, d) for d in artifacts.deliveries
    ]
    timeline += [(r.received_at, -1, r) for r in artifacts.readings]
    timeline.sort(key=lambda t: (t[0], t[1]))
    acked = readings = 0
    rejected: Counter[str] = Counter()
    pending: dict[str, list[Delivery]] = {}
    clients: dict[str, RegistryClient] = {}

    def client(source: str) -> RegistryClient:
        if source not in clients:
            token = provisioned.operator_tokens.get(source)
            if token is None:
                raise AgentError(f"no operator token for report source {source!r}")
            clients[source] = RegistryClient(provisioned.base_url, token, timeout=timeout)
        return clients[source]

    def flush() -> None:
        nonlocal acked
        for source, batch in sorted(pending.items(), key=lambda kv: kv[1][0].received_at):
            for i in range(0, len(batch), batch_size):
                chunk = batch[i : i + batch_size]
                _tick(set_time, chunk[-1].received_at)
                result = client(source).post_batch([d.envelope for d in chunk])
                for r in result.results:
                    if r.acknowledged:
                        acked += 1
                    else:
                        rejected[r.code or "rejected"] += 1
        pending.clear()

    try:
        with httpx.Client(base_url=provisioned.base_url.rstrip("/"), timeout=timeout) as h:
            api = AdminApi(h)
            for at, _, item in timeline:
                first = min((b[0].received_at for b in pending.values()), default=at)
                if isinstance(item, Reading) or at - first > timedelta(minutes=1):
                    flush()
                if isinstance(item, Delivery):
                    pending.setdefault(item.source, []).append(item)
                    continue
                _tick(set_time, at)
                body = Envelope.from_json(_reading_for_registry(provisioned, item)).to_dict()
                try:
                    api.post("/v1/meter-readings", provisioned.meter_token, body)
                    readings += 1
                except RegistryRejected as exc:
                    rejected[exc.code] += 1
            flush()
    finally:
        for c in clients.values():
            c.close()
    return DeliveryStats(acked, readings, dict(rejected))


def _nearest_landmarks(world: World, chip: ChipSim, n: int) -> list[int]:
    site = world.facilities[chip.facility_id].site
    return sorted(
        world.landmarks,
        key=lambda lid: great_circle_km(
            world.landmarks[lid].place.latitude,
            world.landmarks[lid].place.longitude,
            site.latitude,
            site.longitude,
        ),
    )[:n]


def measure_locations(
    provisioned: ProvisionedWorld,
    chip_ids: Iterable[str],
    *,
    landmarks: int = 2,
    pings: int = 3,
    seed: int = 0,
    timeout: float = 30.0,
) -> int:
    """Live round trips from the ``landmarks`` landmarks nearest each chip's declared facility,
    ``pings`` each; returns how many measurements the registry accepted.

    Per round trip: the landmark asks the registry for a nonce; the chip, wherever it truly
    is, signs its answer through the agent; the landmark times the round trip over the real
    distance (:func:`~simulator.physics.simulated_rtt_ms`) and posts the signed
    measurement, dated when the challenge was issued plus the round trip.
    """
    world = provisioned.world
    rng = random.Random(f"{world.seed}:{seed}:measure")
    posted = 0
    with httpx.Client(base_url=provisioned.base_url.rstrip("/"), timeout=timeout) as h:
        api = AdminApi(h)
        for chip_id in chip_ids:
            chip = world.chips[chip_id]
            # The agent holds the chip as an accelerator; only the chip's key can answer.
            accelerator = SimulatedAccelerator(chip.chip_id, chip.model.name, chip.key)
            for lid in _nearest_landmarks(world, chip, landmarks):
                mark = world.landmarks[lid]
                registry_id = provisioned.landmark_ids[lid]
                distance = great_circle_km(
                    mark.place.latitude, mark.place.longitude, chip.latitude, chip.longitude
                )
                for _ in range(pings):
                    challenge = api.post(
                        f"/v1/landmarks/{registry_id}/challenges",
                        provisioned.landmark_token,
                        {"chip_id": chip_id},
                    )
                    nonce = str(challenge["nonce"])
                    answer = answer_challenge(accelerator, registry_id, nonce)
                    rtt = simulated_rtt_ms(distance, rng)
                    issued = datetime.fromisoformat(str(challenge["issued_at"]))
                    measured_at = (issued + timedelta(milliseconds=rtt)).replace(microsecond=0)
                    envelope = sign_measurement(
                        LandmarkMeasurement(
                            landmark_id=registry_id,
                            chip_id=chip_id,
                            nonce=nonce,
                            chip_signature=answer,
                            rtt_ms=rtt,
                            measured_at=measured_at.astimezone(UTC),
                        ),
                        mark.key,
                    )
                    api.post(
                        "/v1/landmark-measurements",
                        provisioned.landmark_token,
                        envelope.to_dict(),
                    )
                    posted += 1
    return posted


def honest_chips(world: World, limit: int | None = None) -> Sequence[str]:
    """Chips that are where they are declared (for sampling honest round trips)."""
    ids = [
        c.chip_id
        for c in world.chips.values()
        if c.at_facility == c.facility_id and c.claim_facility is None
    ]
    return ids if limit is None else ids[:limit]


def _host_power(model: HostPowerFact) -> dict[str, float]:
    """A declared host power model as ``POST /v1/facilities`` takes it."""
    return {
        "gpus_per_host": model.gpus_per_host,
        "idle_w": model.idle_w,
        "per_gpu_slot_w": model.per_gpu_slot_w,
        "busy_w": model.busy_w,
    }
