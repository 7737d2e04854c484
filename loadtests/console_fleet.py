"""A large simulated fleet in a registry, fast enough to build 100,000 chips for the console
benchmark (``loadtests.bench_console --fleet large``).

The fleet is the simulator's (:func:`simulator.fleet.build_fleet`: four facilities in
three countries, a declared training cluster, an undeclared cluster, chips that go dark), only
scaled up, and every record goes through the registry's own code:

* vendors, operators, tokens and facilities: over HTTP, as :func:`provision_world` makes them;
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
from simulator.fleet import silenced_from, workload
from simulator.identities import Identities, identities
from simulator.inventory import ChipSim
from simulator.provision import ProvisionedWorld, provision_world
from simulator.world import World

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


def _install(ctx: AppContext, accounts: ProvisionedWorld, ids: Identities) -> None:
    world = accounts.world
    stays = sorted(world.stays, key=lambda s: s.start)
    for start in range(0, len(stays), INSTALLS_PER_COMMIT):
        with ctx.sessions() as session:
            service = EnrollmentService(session, ctx.clock)
            for stay in stays[start : start + INSTALLS_PER_COMMIT]:
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
        _install(ctx, accounts, ids)
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
