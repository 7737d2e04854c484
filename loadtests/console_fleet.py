"""A large simulated fleet in a registry, fast enough to build 100,000 chips for the console
benchmark (``loadtests.bench_console --fleet large``).

The fleet is the simulator's (:func:`simulator.fleet.build_fleet`: four facilities in
three countries, a declared training cluster, an undeclared cluster, chips that go dark), only
scaled up, and every record goes through the registry's own code:

* vendors, operators, tokens and facilities: over HTTP, as :func:`provision_world` makes them;
* chips: ``POST /v1/chips/batch`` (10,000 per call, each endorsement checked and logged);
* installations: the operator-signed declarations, each checked against its operator's key,
  logged in batches of ``INSTALLS_PER_COMMIT`` through the registry's own log appender
  (:meth:`LogAppender.append`: the same entries, in the same order, as one
  ``POST /v1/installations`` per chip) and their rows written as
  :meth:`EnrollmentService.install` writes them for a chip installed nowhere yet (installation
  row with the entry's log index, ``chips.first_installed_at``). One HTTP call, or one service
  call, per chip appends the log one entry at a time and took 32-55 of the 56-75 minutes a
  100k fleet took to build on the shared machine. ``tests/loadtests/test_console_fleet.py``
  checks that both ways leave the same installations and the same log;
* declared clusters: over HTTP;
* reports: :func:`send_reports` builds each chip's report per window from the simulated
  accelerator's telemetry as the agent does (same backend, same statement), signs it with the
  chip key and posts batches of 500 to ``POST /v1/reports/batch`` with the operator's token.
  (The agents themselves spool every report to a file first: 600,000 files are too slow here.)

Nothing but the installations bypasses the registry's routes, and they are written as the
service writes them (checked by the test above).
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import httpx
from sqlalchemy import insert, update

from agents.backends.simulated import SimulatedAccelerator
from attestation.dsse import verify_envelope
from attestation.logentries import (
    INSTALLATION,
    sign_cluster_declaration,
    sign_installation_declaration,
)
from attestation.report import GENESIS_DIGEST, UsageReport, report_digest, sign_report
from registry.api.context import AppContext
from registry.auth import Principal, Role
from registry.db.models import Chip, Installation
from registry.services.enrollment import EnrollmentService
from registry.services.log import LogAppender
from simulator.fleet import silenced_from, workload
from simulator.identities import Identities, identities
from simulator.inventory import ChipSim, Stay
from simulator.provision import ProvisionedWorld, provision_world
from simulator.world import World

__all__ = [
    "BATCH_CHIPS",
    "BATCH_REPORTS",
    "INSTALLS_PER_COMMIT",
    "install_one_by_one",
    "seed",
    "send_reports",
]

BATCH_CHIPS = 10_000  # the most chips one POST /v1/chips/batch takes
INSTALLS_PER_COMMIT = 5_000
BATCH_REPORTS = 500

Progress = Callable[[str], None]


def _ok(response: httpx.Response) -> dict[str, object]:
    if response.status_code != 201:
        msg = f"{response.request.method} {response.request.url.path}: {response.status_code} "
        raise RuntimeError(msg + response.text[:500])
    doc: dict[str, object] = response.json()
    return doc


def _enroll(
    http: httpx.Client, accounts: ProvisionedWorld, ids: Identities, chips: Sequence[ChipSim]
) -> None:
    by_vendor: dict[str, list[ChipSim]] = defaultdict(list)
    for chip in chips:
        by_vendor[chip.model.vendor].append(chip)
    for vendor, mine in by_vendor.items():
        headers = {"Authorization": f"Bearer {accounts.vendor_tokens[vendor]}"}
        for start in range(0, len(mine), BATCH_CHIPS):
            items = [
                {
                    "certificate_pem": ids.certificate(c).decode(),
                    "peak_tflops_bf16": c.model.peak_tflops_bf16,
                    "tdp_watts": c.model.tdp_watts,
                }
                for c in mine[start : start + BATCH_CHIPS]
            ]
            _ok(
                http.post(
                    "/v1/chips/batch",
                    json={"vendor_id": accounts.vendor_ids[vendor], "chips": items},
                    headers=headers,
                    timeout=600,
                )
            )


Installer = Callable[[AppContext, ProvisionedWorld, Identities], None]


def _stays(world: World) -> list[Stay]:
    stays = sorted(world.stays, key=lambda s: s.start)
    if len({s.chip_id for s in stays}) != len(stays):
        raise ValueError("the bulk installer takes one installation per chip (no moves)")
    return stays


def _install(ctx: AppContext, accounts: ProvisionedWorld, ids: Identities) -> None:
    """Every chip's operator-signed installation declaration, checked, logged in batches and
    stored as :meth:`EnrollmentService.install` stores an installation of a chip installed
    nowhere yet (see the module's docstring)."""
    world = accounts.world
    stays = _stays(world)
    for start in range(0, len(stays), INSTALLS_PER_COMMIT):
        batch = stays[start : start + INSTALLS_PER_COMMIT]
        bodies, rows = [], []
        now = ctx.clock()
        for stay in batch:
            owner = world.facilities[stay.facility_id].operator_id
            key = ids.operator_keys[owner]
            envelope = sign_installation_declaration(
                chip_id=stay.chip_id,
                facility_id=stay.facility_id,
                installed_at=stay.start,
                key=key,
            )
            verify_envelope(envelope, key.public_key)  # as the service checks it
            bodies.append(envelope.to_json())
            rows.append(
                {
                    "chip_id": stay.chip_id,
                    "facility_id": stay.facility_id,
                    "installed_at": stay.start,
                    "removed_at": None,
                    "declared_by_operator_id": accounts.operator_ids[f"operator:{owner}"],
                    "created_at": now,
                }
            )
        with ctx.sessions() as session:
            first = LogAppender(session).append(INSTALLATION, bodies, now)
            for n, row in enumerate(rows):
                row["log_index"] = first + n
            session.execute(insert(Installation), rows)
            by_start: dict[datetime, list[str]] = defaultdict(list)
            for stay in batch:
                by_start[stay.start].append(stay.chip_id)
            for at, chip_ids in by_start.items():
                session.execute(
                    update(Chip)
                    .where(Chip.chip_id.in_(chip_ids), Chip.first_installed_at.is_(None))
                    .values(first_installed_at=at)
                )
            session.commit()


def install_one_by_one(ctx: AppContext, accounts: ProvisionedWorld, ids: Identities) -> None:
    """The same installations through :meth:`EnrollmentService.install`, one call per chip
    (what :func:`_install` is checked against)."""
    world = accounts.world
    with ctx.sessions() as session:
        service = EnrollmentService(session, ctx.clock)
        for stay in _stays(world):
            owner = world.facilities[stay.facility_id].operator_id
            envelope = sign_installation_declaration(
                chip_id=stay.chip_id,
                facility_id=stay.facility_id,
                installed_at=stay.start,
                key=ids.operator_keys[owner],
            )
            # The operator's own token would be checked by the route; the service takes
            # the principal it stands for.
            source = f"operator:{owner}"
            caller = Principal(
                token_id=0,
                name=f"{source} agents",
                role=Role.OPERATOR,
                operator_id=accounts.operator_ids[source],
            )
            service.install(
                caller,
                envelope=envelope,
                chip_id=stay.chip_id,
                facility_id=stay.facility_id,
                installed_at=stay.start,
            )
        session.commit()


def _declare_clusters(
    http: httpx.Client, accounts: ProvisionedWorld, ids: Identities
) -> dict[int, int]:
    world = accounts.world
    cluster_ids = {}
    for cid, cluster in sorted(world.clusters.items()):
        owner = world.facilities[cluster.facility_id].operator_id
        doc = _ok(
            http.post(
                "/v1/clusters",
                json=sign_cluster_declaration(
                    name=cluster.name,
                    purpose=cluster.purpose,
                    facility_id=cluster.facility_id,
                    chip_ids=sorted(cluster.chip_ids),
                    start=cluster.start,
                    end=cluster.end,
                    key=ids.operator_keys[owner],
                ).to_dict(),
                headers={
                    "Authorization": f"Bearer {accounts.operator_tokens[f'operator:{owner}']}"
                },
            )
        )
        value = doc["id"]
        assert isinstance(value, int)
        cluster_ids[cid] = value
    return cluster_ids


def seed(
    ctx: AppContext,
    base_url: str,
    admin_token: str,
    fleet: World,
    *,
    progress: Progress = print,
    install: Installer | None = None,
) -> ProvisionedWorld:
    """Register ``fleet`` (accounts, chips, installations, clusters) in the registry served at
    ``base_url`` whose app context is ``ctx``. Reports are sent afterwards by the agents."""
    began = time.perf_counter()
    # provision_world() makes the accounts and facilities: the same calls, without chips and
    # clusters.
    accounts = provision_world(fleet, base_url, admin_token, declare_chips=False)
    ids = identities(fleet)
    with httpx.Client(base_url=base_url, timeout=60) as http:
        _enroll(http, accounts, ids, list(fleet.chips.values()))
        progress(f"  enrolled {len(fleet.chips)} chips in {time.perf_counter() - began:.0f} s")
        (install or _install)(ctx, accounts, ids)
        progress(f"  installed them by {time.perf_counter() - began:.0f} s")
        clusters = _declare_clusters(http, accounts, ids)
    return dataclasses.replace(accounts, cluster_ids=clusters)


def send_reports(
    accounts: ProvisionedWorld, start: datetime, windows: int, window: timedelta
) -> int:
    """Report ``windows`` consecutive windows for every chip; the planted dark chips stop at
    their labelled window. Returns the number of reports accepted."""
    fleet = accounts.world
    silent = silenced_from(fleet)
    heads = {c: (0, GENESIS_DIGEST) for c in fleet.chips}
    sims = [
        (SimulatedAccelerator(c.chip_id, c.model.name, c.key, workload(c)), c)
        for c in fleet.chips.values()
    ]
    accepted = 0
    with httpx.Client(base_url=accounts.base_url, timeout=600) as http:
        for w in range(windows):
            w_start, w_end = start + w * window, start + (w + 1) * window
            pending: dict[str, list[bytes]] = defaultdict(list)
            for sim, chip in sims:
                if w >= silent.get(chip.chip_id, windows):
                    continue
                seq, prev = heads[chip.chip_id]
                telemetry = sim.read_window(w_start, w_end)
                report = UsageReport(
                    chip_id=chip.chip_id,
                    key_id=chip.public_key.key_id,
                    seq=seq + 1,
                    prev_digest=prev,
                    window_start=w_start,
                    window_end=w_end,
                    utilization=telemetry.utilization,
                    energy_j=telemetry.energy_j,
                    interconnect=telemetry.interconnect,
                )
                envelope = sign_report(report, chip.key)
                heads[chip.chip_id] = (seq + 1, report_digest(envelope.payload))
                pending[chip.source].append(envelope.to_json())
            for owner, bodies in pending.items():
                headers = {
                    "Authorization": f"Bearer {accounts.operator_tokens[owner]}",
                    "Content-Type": "application/json",
                }
                for i in range(0, len(bodies), BATCH_REPORTS):
                    body = b'{"reports":[' + b",".join(bodies[i : i + BATCH_REPORTS]) + b"]}"
                    r = http.post("/v1/reports/batch", content=body, headers=headers)
                    if r.status_code != 200:
                        raise RuntimeError(f"reports/batch: {r.status_code} {r.text[:500]}")
                    doc = r.json()
                    if doc["rejected"]:
                        raise RuntimeError(f"reports rejected: {r.text[:500]}")
                    accepted += int(doc["accepted"])
    return accepted
