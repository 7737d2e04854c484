"""A large simulated fleet in a registry, fast enough to build 100,000 chips for the console
benchmark (``loadtests.bench_console --fleet large``).

The fleet is the simulator's (:func:`agents.simulator.fleet.build_fleet`: four facilities in
three countries, a declared training cluster, an undeclared cluster, chips that go dark), only
scaled up, and every record goes through the registry's own code:

* vendors, operators, tokens and facilities: over HTTP, as :func:`provision` makes them;
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
from agents.simulator.fleet import Fleet, SimChip
from agents.simulator.provision import ProvisionedFleet, provision
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


def _enroll(http: httpx.Client, accounts: ProvisionedFleet, chips: Sequence[SimChip]) -> None:
    by_vendor: dict[str, list[SimChip]] = defaultdict(list)
    for chip in chips:
        by_vendor[chip.model.vendor].append(chip)
    for vendor, mine in by_vendor.items():
        headers = {"Authorization": f"Bearer {accounts.vendor_tokens[vendor]}"}
        for start in range(0, len(mine), BATCH_CHIPS):
            items = [
                {
                    "certificate_pem": c.certificate_pem.decode(),
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


def _install(ctx: AppContext, accounts: ProvisionedFleet, chips: Sequence[SimChip]) -> None:
    """Every chip's operator-signed installation declaration, checked, logged in batches and
    stored as :meth:`EnrollmentService.install` stores an installation of a chip installed
    nowhere yet (see the module's docstring)."""
    fleet = accounts.fleet
    keys = {name: op.key.public_key for name, op in fleet.operators.items()}
    for start in range(0, len(chips), INSTALLS_PER_COMMIT):
        batch = chips[start : start + INSTALLS_PER_COMMIT]
        bodies, rows = [], []
        now = ctx.clock()
        for chip in batch:
            owner = fleet.facilities[chip.facility].operator
            facility_id = accounts.facility_ids[chip.facility]
            envelope = sign_installation_declaration(
                chip_id=chip.chip_id,
                facility_id=facility_id,
                installed_at=fleet.installed_at,
                key=fleet.operators[owner].key,
            )
            verify_envelope(envelope, keys[owner])  # as the service checks it
            bodies.append(envelope.to_json())
            rows.append(
                {
                    "chip_id": chip.chip_id,
                    "facility_id": facility_id,
                    "installed_at": fleet.installed_at,
                    "removed_at": None,
                    "declared_by_operator_id": accounts.operator_ids[owner],
                    "created_at": now,
                }
            )
        with ctx.sessions() as session:
            first = LogAppender(session).append(INSTALLATION, bodies, now)
            for n, row in enumerate(rows):
                row["log_index"] = first + n
            session.execute(insert(Installation), rows)
            session.execute(
                update(Chip)
                .where(Chip.chip_id.in_([c.chip_id for c in batch]))
                .where(Chip.first_installed_at.is_(None))
                .values(first_installed_at=fleet.installed_at)
            )
            session.commit()


def install_one_by_one(
    ctx: AppContext, accounts: ProvisionedFleet, chips: Sequence[SimChip]
) -> None:
    """The same installations through :meth:`EnrollmentService.install`, one call per chip
    (what :func:`_install` is checked against)."""
    fleet = accounts.fleet
    with ctx.sessions() as session:
        service = EnrollmentService(session, ctx.clock)
        for chip in chips:
            owner = fleet.facilities[chip.facility].operator
            facility_id = accounts.facility_ids[chip.facility]
            envelope = sign_installation_declaration(
                chip_id=chip.chip_id,
                facility_id=facility_id,
                installed_at=fleet.installed_at,
                key=fleet.operators[owner].key,
            )
            caller = Principal(
                token_id=0,
                name=f"{owner} agents",
                role=Role.OPERATOR,
                operator_id=accounts.operator_ids[owner],
            )
            service.install(
                caller,
                envelope=envelope,
                chip_id=chip.chip_id,
                facility_id=facility_id,
                installed_at=fleet.installed_at,
            )
        session.commit()


def _declare_clusters(http: httpx.Client, accounts: ProvisionedFleet) -> dict[str, int]:
    fleet = accounts.fleet
    ids = {}
    for cluster in fleet.clusters:
        owner = fleet.facilities[cluster.facility].operator
        doc = _ok(
            http.post(
                "/v1/clusters",
                json=sign_cluster_declaration(
                    name=cluster.name,
                    purpose=cluster.purpose,
                    facility_id=accounts.facility_ids[cluster.facility],
                    chip_ids=cluster.chip_ids,
                    start=cluster.start,
                    end=cluster.end,
                    key=fleet.operators[owner].key,
                ).to_dict(),
                headers={"Authorization": f"Bearer {accounts.operator_tokens[owner]}"},
            )
        )
        value = doc["id"]
        assert isinstance(value, int)
        ids[cluster.name] = value
    return ids


def seed(
    ctx: AppContext,
    base_url: str,
    admin_token: str,
    fleet: Fleet,
    *,
    progress: Progress = print,
    install: Callable[[AppContext, ProvisionedFleet, Sequence[SimChip]], None] | None = None,
) -> ProvisionedFleet:
    """Register ``fleet`` (accounts, chips, installations, clusters) in the registry served at
    ``base_url`` whose app context is ``ctx``. Reports are sent afterwards by the agents."""
    began = time.perf_counter()
    # provision() makes the accounts and facilities: the same calls, without chips and clusters.
    accounts = provision(dataclasses.replace(fleet, chips=(), clusters=()), base_url, admin_token)
    accounts = dataclasses.replace(accounts, fleet=fleet)
    with httpx.Client(base_url=base_url, timeout=60) as http:
        _enroll(http, accounts, fleet.chips)
        progress(f"  enrolled {len(fleet.chips)} chips in {time.perf_counter() - began:.0f} s")
        (install or _install)(ctx, accounts, fleet.chips)
        progress(f"  installed them by {time.perf_counter() - began:.0f} s")
        clusters = _declare_clusters(http, accounts)
    return dataclasses.replace(accounts, cluster_ids=clusters)


def send_reports(
    accounts: ProvisionedFleet, start: datetime, windows: int, window: timedelta
) -> int:
    """Report ``windows`` consecutive windows for every chip; the planted dark chips stop at
    the fleet's ``dark_after_window``. Returns the number of reports accepted."""
    fleet = accounts.fleet
    dark = fleet.dark_chip_ids()
    heads = {c.chip_id: (0, GENESIS_DIGEST) for c in fleet.chips}
    sims = [
        (SimulatedAccelerator(c.chip_id, c.model.name, c.key, c.workload), c) for c in fleet.chips
    ]
    accepted = 0
    with httpx.Client(base_url=accounts.base_url, timeout=600) as http:
        for w in range(windows):
            w_start, w_end = start + w * window, start + (w + 1) * window
            pending: dict[str, list[bytes]] = defaultdict(list)
            for sim, chip in sims:
                if w >= fleet.spec.dark_after_window and chip.chip_id in dark:
                    continue
                seq, prev = heads[chip.chip_id]
                telemetry = sim.read_window(w_start, w_end)
                report = UsageReport(
                    chip_id=chip.chip_id,
                    key_id=chip.key.public_key.key_id,
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
                owner = fleet.facilities[chip.facility].operator
                pending[owner].append(envelope.to_json())
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
