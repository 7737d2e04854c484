"""``chipreg demo``: the whole flow on an embedded SQLite database, in under a minute.

It starts the registry on a local port, provisions a simulated fleet through the public API
(vendors, operators, facilities in several countries, a few hundred endorsed chips, their
installations, one declared training cluster, and the location landmarks and facility meters
of the independent channels), runs one simulated agent per facility for
several reporting windows over real HTTP, runs the verifier, and prints what it found next to
the fleet's ground truth. Hidden in the fleet: an undeclared cluster and chips that go dark.
Last, it audits the registry as a treaty partner would (``chipreg audit`` with only the log's
public key) and exits non-zero on a missed violation, a false alarm or a failed audit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from attestation.checkpoint import Checkpoint
from attestation.note import NoteVerifier
from attestation.timefmt import format_time
from audit.core import TrustPolicy, audit_log, check_served_findings
from registry.api.app import create_app
from registry.api.context import utc_now
from registry.auth import Role
from registry.cli.audit import fetch_entries, served_findings
from registry.cli.render import describe_finding, table
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.services.log import TransparencyLog
from registry.settings import Settings
from simulator.fleet import FleetSpec, build_fleet, silenced_from
from simulator.gpu_attestation import gpu_vendor, run_gpu_episode
from simulator.provision import ProvisionedWorld, provision_world
from simulator.run import run_windows
from simulator.world import World

__all__ = ["add_parser"]

WINDOW = timedelta(minutes=15)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole flow on a local SQLite registry and print the findings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--serve", action="store_true", help="keep the registry running afterwards")
    p.add_argument("--port", type=int, default=0, help="registry port (default: a free one)")
    p.add_argument("--windows", type=int, default=8, help="15-minute windows to simulate")
    p.add_argument("--seed", type=int, default=2026, help="fleet seed (same seed, same fleet)")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where to keep the SQLite database, log key and agent spools (default: temporary)",
    )
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace, _settings: Settings) -> int:
    if args.windows < 5:
        print("chipreg demo: --windows must be at least 5 (chips go dark after window 3)")
        return 2
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        return _run(args, args.data_dir)
    with tempfile.TemporaryDirectory(prefix="chipreg-demo-") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, data: Path) -> int:
    began = time.perf_counter()
    gpu_root = data / "gpu-root.pem"
    gpu_root.write_bytes(gpu_vendor().root_pem)
    settings = Settings(
        database_url=f"sqlite:///{data / 'chipreg.sqlite3'}",
        log_key_file=data / "log-key",
        log_origin="demo.chipreg.local/log",
        gpu_root_files=[gpu_root],
    )
    app = create_app(settings)
    context = app.state.context
    with context.sessions() as session:
        accounts = AccountService(session, utc_now)
        admin = accounts.create_token("demo admin", Role.ADMIN).secret
        inspector = accounts.create_token("demo inspector", Role.INSPECTOR).secret
        session.commit()

    server = BackgroundServer(app, port=args.port or None)
    server.start()
    try:
        _step(f"registry listening on {server.url} (SQLite at {data / 'chipreg.sqlite3'})")
        fleet = build_fleet(
            FleetSpec(seed=args.seed, inference_chips_per_facility=48, idle_chips_per_facility=16)
        )
        provisioned = provision_world(fleet, server.url, admin)
        _describe_fleet(provisioned)
        start = fleet.epoch + timedelta(hours=1)
        stats = run_windows(provisioned, start, args.windows, WINDOW, data / "agents")
        _step(
            f"agents posted {stats.acknowledged} signed reports over {args.windows} windows "
            f"({stats.rejected} rejected, {stats.pending} pending) in {stats.elapsed_s:.1f}s"
        )
        episode = run_gpu_episode(server.url, admin, utc_now())
        _step(
            f"hardware attestation: {len(episode.attested)} chips enrolled with simulated GPU "
            f"evidence bound to their keys; a third key on the same GPU refused "
            f"({episode.clone_refused_with}); re-attestation: "
            + ", ".join(
                f"{c} {'same GPU' if s else 'ANOTHER GPU (logged; rule gpu.device_changed)'}"
                for c, s in sorted(episode.same_device.items())
            )
        )
        as_of = start + args.windows * WINDOW
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {inspector}"}
        ) as http:
            run = _ok(
                http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": format_time(as_of)})
            )
            _step(
                f"verifier (policy {run['policy_id']} v{run['policy_version']}) judged "
                f"{run['reports_examined']} reports as of {format_time(as_of)}"
            )
            findings = _ok(http.get("/v1/findings"))["findings"]
            # The run is logged with its findings; wait for a checkpoint that covers it.
            with context.sessions() as session:
                logged = TransparencyLog(session, context.log_signer).sequenced_size()
            checkpoint = _wait_checkpoint(http, logged)
        print()
        print(_findings_table(findings))
        verdict = _compare(fleet, findings)
        print()
        print(f"Log checkpoint (C2SP signed note):\n{checkpoint}")
        audited = _partner_audit(server.url, inspector, context.log_signer.verifier_key)
        _where_next(server.url, inspector, context.log_signer.verifier_key)
        print(f"demo finished in {time.perf_counter() - began:.1f}s")
        print(f"\nConsole: {server.url}/console")
        print(f"  log in as the inspector with the token {inspector}")
        if args.serve:
            print(f"\nregistry still running on {server.url}; press Ctrl-C to stop.")
            _wait_forever()
        else:
            print("  (run `make demo ARGS=--serve` to keep the registry and console up)")
        return 0 if verdict and audited else 1
    finally:
        server.stop()


def _checkpoint_size(note: str) -> int:
    return Checkpoint.from_text(note[: note.find("\n\n") + 1]).size


def _wait_checkpoint(http: httpx.Client, size: int, timeout_s: float = 30.0) -> str:
    """The first published checkpoint that covers the first ``size`` log entries."""
    deadline = time.monotonic() + timeout_s
    while True:
        note = http.get("/v1/log/checkpoint").text
        if _checkpoint_size(note) >= size or time.monotonic() > deadline:
            return note
        time.sleep(0.1)


def _partner_audit(url: str, token: str, vkey: str) -> bool:
    """What a treaty partner's ``chipreg audit`` does, from the log alone."""
    with httpx.Client(base_url=url) as http:
        note = http.get("/v1/log/checkpoint").text
        report = audit_log(
            note,
            fetch_entries(http, _checkpoint_size(note)),
            TrustPolicy(NoteVerifier.from_vkey(vkey)),
        )
        compared = check_served_findings(report, served_findings(http, token))
    replay = report.replay
    signatures = replay.signatures_checked if replay is not None else 0
    _step(
        f"partner audit (chipreg audit, log key only): {'PASS' if report.ok else 'FAIL'}: "
        f"{report.entries} entries and the tree root, {signatures} signatures re-verified, "
        f"{len(report.runs)} verifier run(s) re-derived, {compared} served findings all logged"
    )
    for problem in report.problems[:10]:
        print(f"    {problem}")
    return report.ok


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        msg = f"{response.request.method} {response.request.url.path}: {response.text}"
        raise SystemExit(msg)
    return response.json()


def _describe_fleet(provisioned: ProvisionedWorld) -> None:
    fleet = provisioned.world
    countries = sorted({f.site.country for f in fleet.facilities.values()})
    _step(
        f"provisioned {len(provisioned.vendor_ids)} vendors, {len(fleet.operators)} operators, "
        f"{len(fleet.facilities)} facilities in {len(countries)} countries "
        f"({', '.join(countries)}), {len(fleet.chips)} endorsed chips, "
        f"{len(fleet.clusters)} declared cluster(s)"
    )


def _findings_table(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return "No findings."
    rows = []
    for f in findings:
        what = describe_finding(f["kind"], f["details"], f["summary"])
        rows.append(
            [f["severity"], f["kind"], f["subject_id"], f["facility_id"], f["country"], what]
        )
    out = [f"Findings ({len(findings)}):"]
    headers = ["severity", "kind", "subject", "facility", "country", "what"]
    out.append(table(headers, rows, max_width=90))
    for f in findings:
        if f["kind"] == "undeclared_cluster":
            out.append(f"\n{f['subject_id']}: {f['summary']}")
            out.append(f"  chips: {', '.join(f['details'].get('chip_ids', []))}")
            out.append(f"  evidence: {len(f['evidence'])} signed reports (log indexes)")
    return "\n".join(out)


def _compare(fleet: World, findings: list[dict[str, Any]]) -> bool:
    """Print planted violations against findings; True when they match exactly."""
    clusters = [
        set(f["details"].get("chip_ids", [])) for f in findings if f["kind"] == "undeclared_cluster"
    ]
    silent = {f["subject_id"] for f in findings if f["kind"] == "chip_silent"}
    rows, ok = [], True
    for v in fleet.labels:
        planted = set(v.chips)
        if v.kind == "undeclared_cluster":
            found = any(planted <= c for c in clusters)
        else:
            found = planted <= silent
        ok &= found
        where = ", ".join(fleet.facilities[f].site.slug for f in sorted(v.facilities))
        rows.append([v.kind, where, len(planted), "FOUND" if found else "MISSED", v.detail])
    false_silent = silent - set(silenced_from(fleet))
    declared = {c for cl in fleet.clusters.values() for c in cl.chip_ids}
    false_cluster = [c for c in clusters if c <= declared]
    ok &= not false_silent and not false_cluster and len(clusters) == 1
    print()
    print("Ground truth (planted by the simulator):")
    print(table(["planted", "facility", "chips", "verifier", "detail"], rows, max_width=70))
    print(
        f"false alarms: {len(false_silent)} silent chips, {len(false_cluster)} declared clusters "
        f"flagged -> {'OK' if ok else 'MISMATCH'}"
    )
    return ok


def _where_next(url: str, token: str, vkey: str) -> None:
    print("Where to look next:")
    print(f"  API docs (offline Swagger UI): {url}/docs")
    print(f"  inspector token: {token}")
    print(f"  curl -H 'Authorization: Bearer {token}' '{url}/v1/findings?kind=undeclared_cluster'")
    print(f"  curl -H 'Authorization: Bearer {token}' '{url}/v1/facilities?country=FI'")
    print(f"  curl '{url}/v1/log/checkpoint'")
    print(f"  CHIPREG_TOKEN={token} chipreg query --registry {url} findings")
    print(f"  chipreg audit --registry {url} --log-vkey '{vkey}'")
    print("  (run `make demo ARGS=--serve` to keep the registry up for these)")


def _wait_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping")
