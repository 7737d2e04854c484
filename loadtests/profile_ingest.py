"""CPU per report of the ingest path, by phase, in one thread, and where it goes (cProfile).

The busy shared machine makes throughput a poor figure; the CPU a report costs is the one that
carries over. This harness enrolls a fleet through the real API (a registry served in this
process), then runs each pre-signed 256-report batch body through the same steps a
``POST /v1/reports/batch`` takes, on this thread, so ``time.thread_time`` charges each step
exactly and cProfile sees all of it: the strict body decode, the caller's token lookup, the
prepare phase (parse, key lookup, signature checks, leaf hashes) in its own transaction, the
writer's commit phase for a group of batches (sequencing lock, chain heads kept between groups
as the writer keeps them, checks, report rows, log entries, head updates) and its database
commit, the response body, and, after each group, the integrator's work for it (leaf hashes
read back, compact range, tiles, tree head, its commit: off the acknowledgement's path, but CPU
all the same). What it leaves out is the HTTP server and framework (measured in
docs/benchmarks.md from the load runs), checkpoint signing (once per round, not per report)
and the waits. ``--heads reload`` reads every chip of every group again (what a writer does
when another process wrote since its last group), to measure what the kept heads save.

The first half of the batches is timed, the second half profiled (the chains continue)::

    python -m loadtests.profile_ingest --db sqlite
    scripts/with-postgres.sh python -m loadtests.profile_ingest --db postgresql --reset
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from attestation.dsse import Envelope, pae
from attestation.report import open_envelope
from loadtests import fleet
from loadtests.server import reset_postgres
from registry.api.app import create_app
from registry.api.body import decode_json
from registry.api.context import AppContext, utc_now
from registry.api.routes.reports import _batch_body
from registry.auth import Principal, Role
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.services.ingest import (
    Accepted,
    IngestService,
    PreparedBatch,
)
from registry.services.log import TransparencyLog, integrate
from registry.services.sequencer_state import KeyCache, SequencerState
from registry.settings import Settings

__all__ = ["main", "run_batches"]

PHASES = (
    "body_json",
    "auth",
    "prepare",
    "prepare_commit",
    "commit",
    "db_commit",
    "response",
    "integrate",
    "integrate_commit",
)


def _setup(database_url: str, workdir: Path, chips: int, reports: int, batch_size: int) -> Any:
    settings = Settings(
        database_url=database_url,
        log_key_file=workdir / "log-key",
        log_origin="profile.chipreg.local/log",
        checkpoint_interval_s=3600,
    )
    app = create_app(settings)
    context: AppContext = app.state.context
    with context.sessions() as session:
        admin = AccountService(session, utc_now).create_token("profile admin", Role.ADMIN).secret
        session.commit()
    fleet_chips = fleet.make_chips(chips, seed="profile")
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        accounts = fleet.create_accounts(http, admin, seed="profile")
        fleet.enroll(http, accounts, fleet_chips, threads=4)
    fleet.write_slots(
        fleet_chips,
        reports_per_chip=reports,
        slots=1,
        batch_size=batch_size,
        out=workdir / "fleet",
        operator_token=accounts.operator_token,
    )
    bodies = fleet.slot_path(workdir / "fleet", 0).read_bytes().splitlines()
    return context, accounts.operator_token, bodies


def run_batches(  # noqa: PLR0917 (a harness: every argument is one of its knobs)
    context: AppContext,
    token: str,
    bodies: Sequence[bytes],
    group: int,
    keys: KeyCache,
    state: SequencerState | None = None,
    integrate_every: int = 1,
) -> tuple[dict[str, float], int]:
    """Ingest ``bodies`` as the route and the writer would, ``group`` batches per commit, then
    integrate every ``integrate_every`` groups (and after the last) as the integrator's rounds
    would. ``state``: the writer's kept chain heads (None: every group reads its chips again).

    Returns the thread CPU seconds per phase and the number of accepted reports.
    """
    spent = dict.fromkeys(PHASES, 0.0)
    accepted = 0
    clock = time.thread_time
    for start in range(0, len(bodies), group):
        prepared: list[PreparedBatch] = []
        for body in bodies[start : start + group]:
            t0 = clock()
            envelopes = decode_json(body)["reports"]
            t1 = clock()
            session = context.sessions()
            caller: Principal = AccountService(session, context.clock).authenticate(token)
            t2 = clock()
            service = IngestService(session, TransparencyLog(session, context.log_signer), utc_now)
            prepared.append(service.prepare(envelopes, caller, keys))
            t3 = clock()
            session.commit()
            session.close()
            t4 = clock()
            spent["body_json"] += t1 - t0
            spent["auth"] += t2 - t1
            spent["prepare"] += t3 - t2
            spent["prepare_commit"] += t4 - t3
        t0 = clock()
        session = context.sessions()
        log = TransparencyLog(session, context.log_signer)
        results = IngestService(session, log, utc_now).commit(prepared, state)
        t1 = clock()
        session.commit()
        if state is not None:
            state.committed()
        session.close()
        t2 = clock()
        for batch_results in results:
            _batch_body(batch_results)
            accepted += sum(isinstance(r, Accepted) for r in batch_results)
        t3 = clock()
        last = start + group >= len(bodies)
        if last or (start // group + 1) % integrate_every == 0:
            session = context.sessions()
            integrate(session, utc_now())
            t4 = clock()
            session.commit()
            session.close()
            t5 = clock()
        else:
            t4 = t5 = t3
        spent["commit"] += t1 - t0
        spent["db_commit"] += t2 - t1
        spent["response"] += t3 - t2
        spent["integrate"] += t4 - t3
        spent["integrate_commit"] += t5 - t4
    return spent, accepted


def verify_cpu(bodies: Sequence[bytes], keys: KeyCache) -> float:
    """Thread CPU seconds of one signature check (the registry's, keys already parsed), over
    the reports of ``bodies``: the part of a report's cost that is the signature."""
    msgs = []
    for body in bodies:
        for obj in json.loads(body)["reports"]:
            envelope = Envelope.from_dict(obj)
            key = keys.get(open_envelope(envelope).claimed.chip_id)
            assert key is not None
            msgs.append(
                (key, envelope.signatures[0].sig, pae(envelope.payload_type, envelope.payload))
            )
    started = time.thread_time()
    for _ in range(5):
        for key, sig, msg in msgs:
            key.verify(sig, msg)
    return (time.thread_time() - started) / (5 * len(msgs))


def _profile_text(profile: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.profile_ingest", description=__doc__)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--reset", action="store_true", help="PostgreSQL: drop the public schema")
    p.add_argument("--chips", type=int, default=1024)
    p.add_argument("--reports", type=int, default=8, help="reports per chip")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--group", type=int, default=4, help="batches per writer commit")
    p.add_argument("--top", type=int, default=30, help="functions listed per profile")
    p.add_argument(
        "--heads",
        choices=("kept", "reload"),
        default="kept",
        help="kept: the writer's chain heads between groups; reload: read every group's chips",
    )
    p.add_argument(
        "--integrate-every",
        type=int,
        default=4,
        help="groups per integrator round (4 x 1,024 reports: a 0.5 s round at ~8,000/s)",
    )
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chipreg-profile-") as tmp:
        workdir = Path(tmp)
        if args.db == "postgresql":
            url = os.environ["CHIPREG_TEST_POSTGRES_URL"]
            if args.reset:
                reset_postgres(url)
        else:
            url = f"sqlite:///{workdir / 'registry.sqlite3'}"
        context, token, bodies = _setup(url, workdir, args.chips, args.reports, args.batch_size)
        half = len(bodies) // 2
        keys = KeyCache()
        state = SequencerState() if args.heads == "kept" else None
        load_before = os.getloadavg()
        every = args.integrate_every
        spent, accepted = run_batches(context, token, bodies[:half], args.group, keys, state, every)
        verify_s = verify_cpu(bodies[:2], keys)
        # CPU time, not wall time: on a busy machine a preempted call would look slow.
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        _, profiled = run_batches(context, token, bodies[half:], args.group, keys, state, every)
        profile.disable()
        load_after = os.getloadavg()
        context.engine.dispose()
    expected = args.chips * args.reports
    if accepted + profiled != expected:
        print(f"only {accepted + profiled} of {expected} reports were accepted")
        return 1
    per_report = {k: 1e6 * v / accepted for k, v in spent.items()}
    summary = {
        "db": args.db,
        "reports_timed": accepted,
        "batch_size": args.batch_size,
        "group": args.group,
        "heads": args.heads,
        "integrate_every": args.integrate_every,
        "us_per_report": {k: round(v, 1) for k, v in per_report.items()},
        "us_per_report_total": round(sum(per_report.values()), 1),
        # The writer's serial section (sequencing lock held: commit phase and its commit).
        "us_lock_held_per_report": round(per_report["commit"] + per_report["db_commit"], 1),
        # Of which the signature check (measured alone on the same reports, same thread).
        "us_verify_per_report": round(1e6 * verify_s, 1),
        "us_outside_verify_per_report": round(sum(per_report.values()) - 1e6 * verify_s, 1),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    print(_profile_text(profile, args.top))
    print(json.dumps(summary, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
