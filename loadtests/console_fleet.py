"""A large simulated fleet in a registry, fast enough to build 100,000 chips for the console
benchmark (``loadtests.bench_console --fleet large``).

The fleet is the simulator's (:func:`simulator.fleet.build_fleet`: four facilities in
three countries, a declared training cluster, an undeclared cluster, chips that go dark), only
scaled up, and every record goes through the registry's own code:

* vendors, operators, tokens and facilities: over HTTP, as :func:`provision` makes them;
* chips: ``POST /v1/chips/batch`` (10,000 per call, each endorsement checked and logged);
* installations: the operator-signed declarations, given to the registry's
  :class:`EnrollmentService` in-process, a few thousand per transaction (one HTTP call each
  would take most of an hour on the shared 2-core machine; the service checks each signature,
  custody and the chip, and logs each declaration, exactly as the route does);
* declared clusters: over HTTP;
* reports: :func:`send_reports` builds each chip's report per window from the simulated
  accelerator's telemetry as the agent does (same backend, same statement), signs it with the
  chip key and posts batches of 500 to ``POST /v1/reports/batch`` with the operator's token.
  (The agents themselves spool every report to a file first: 600,000 files are too slow here.)

Nothing is written to the database by hand.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import httpx

from agents.backends.simulated import SimulatedAccelerator
from attestation.logentries import sign_cluster_declaration, sign_installation_declaration
from attestation.report import GENESIS_DIGEST, UsageReport, report_digest, sign_report
from registry.api.context import AppContext
from registry.auth import Principal, Role
from registry.services.enrollment import EnrollmentService
from simulator.fleet import Fleet, SimChip
from simulator.provision import ProvisionedFleet, provision

__all__ = ["BATCH_CHIPS", "BATCH_REPORTS", "INSTALLS_PER_COMMIT", "seed", "send_reports"]

BATCH_CHIPS = 10_000  # the most chips one POST /v1/chips/batch takes
INSTALLS_PER_COMMIT = 200
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
    fleet = accounts.fleet
    for start in range(0, len(chips), INSTALLS_PER_COMMIT):
        with ctx.sessions() as session:
            service = EnrollmentService(session, ctx.clock)
            for chip in chips[start : start + INSTALLS_PER_COMMIT]:
                owner = fleet.facilities[chip.facility].operator
                facility_id = accounts.facility_ids[chip.facility]
                envelope = sign_installation_declaration(
                    chip_id=chip.chip_id,
                    facility_id=facility_id,
                    installed_at=fleet.installed_at,
                    key=fleet.operators[owner].key,
                )
                # The operator's own token would be checked by the route; the service takes
                # the principal it stands for.
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
        _install(ctx, accounts, fleet.chips)
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
