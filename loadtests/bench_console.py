"""Time the console's pages and the inspector read API, on the demo's data or a large fleet,
on SQLite and PostgreSQL.

For each database (``--db``) and fleet (``--fleet``) it starts a registry on a loopback port
in this process, fills it, runs the verifier once, logs in as an inspector and requests each
page and each query ``--repeat`` times, one at a time. It prints, per path, the **server
time** (from the request's arrival in the app to the last byte of its response, measured by a
timing wrapper around the app) at p50 and p99, and the client's p50 (loopback HTTP included),
with the 1-minute load average before and after each table (the machine is shared).

Fleets:

* ``demo``: the demo's fleet (``chipreg demo``: 304 chips, provisioned chip by chip over HTTP);
* ``large``: the same simulator fleet scaled by ``--scale`` (10,000: 100,096 chips in four
  facilities, 500 of them going dark), provisioned by :mod:`loadtests.console_fleet`.

The chips report ``--windows`` windows of 15 minutes; the verifier then judges them (``demo``
policy, as ``chipreg demo`` runs it). PostgreSQL comes from ``CHIPREG_TEST_POSTGRES_URL`` (its
``public`` schema is dropped and rebuilt for each fleet); run under ``scripts/with-postgres.sh``:

    .venv/bin/python -m loadtests.bench_console --fleet demo --repeat 100
    scripts/with-postgres.sh .venv/bin/python -m loadtests.bench_console \\
        --db sqlite postgresql --fleet demo large --repeat 50 --json /tmp/console.json

``--keep DIR`` keeps the SQLite database of each fleet (``DIR/<fleet>.sqlite3``) and
``--reuse`` measures such a kept database (or the PostgreSQL database as it is) again without
building it: what the query-plan work is done against. On PostgreSQL, ``--save-pg FILE`` writes
the built database with ``pg_dump --format=custom`` and ``--load-pg FILE`` (with ``--reuse``)
restores such a dump into the server before measuring, so a 100k fleet is built once per
machine, not once per throwaway server. Migrations newer than the kept database are applied at
start-up; then one roll-up step of the read totals runs (timed and printed) before measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, event, text

from attestation.timefmt import format_time
from loadtests.console_fleet import seed, send_reports
from registry.api.app import create_app
from registry.api.context import utc_now
from registry.auth import Role
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.settings import Settings
from registry.workers.rollup import roll_up_totals
from simulator.fleet import FleetSpec, build_fleet
from simulator.provision import provision_world
from simulator.run import run_windows

WINDOW = timedelta(minutes=15)
POSTGRES_ENV = "CHIPREG_TEST_POSTGRES_URL"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


@dataclass
class LastRequest:
    ms: float = 0.0


class ServerTimer:
    """ASGI middleware: the time from a request's arrival in the app to the end of its
    response body. Requests here go one at a time, so ``sink`` holds the last request's."""

    def __init__(self, app: ASGIApp, sink: LastRequest) -> None:
        self.app = app
        self.sink = sink

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.sink.ms = (time.perf_counter() - began) * 1000

        await self.app(scope, receive, timed_send)


class Statements:
    """With ``--plans``: every SQL statement one request runs, with its time, and the plan of
    the slow ones (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN ANALYZE``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.on = False
        self.seen: list[tuple[float, str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        conn.info["bench_began"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if self.on:
            ms = (time.perf_counter() - conn.info.pop("bench_began")) * 1000
            self.seen.append((ms, statement, params))

    def report(self, http: httpx.Client, path: str, slower_than_ms: float) -> None:
        self.seen, self.on = [], True
        http.get(path)
        self.on = False
        total = sum(ms for ms, _, _ in self.seen)
        print(f"-- {path}: {len(self.seen)} statements, {total:.1f} ms in the database")
        for ms, statement, params in sorted(self.seen, key=lambda s: -s[0])[:4]:
            if ms < slower_than_ms or not statement.lstrip().upper().startswith("SELECT"):
                continue
            print(f"   {ms:7.1f} ms  {' '.join(statement.split())[:400]}")
            explain = (
                "EXPLAIN QUERY PLAN "
                if self.engine.dialect.name == "sqlite"
                else "EXPLAIN ANALYZE "
            )
            with self.engine.connect() as conn:
                for row in conn.exec_driver_sql(explain + statement, params):
                    print(f"      {row[-1]}")


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Timing:
    who: str
    path: str
    server_p50: float
    server_p99: float
    client_p50: float
    bytes: int


@dataclass
class Table:
    db: str
    fleet: str
    chips: int
    findings: int
    repeat: int
    load_before: float
    load_after: float = 0.0
    rows: list[Timing] = field(default_factory=list)


def _time(http: httpx.Client, timer: LastRequest, who: str, path: str, repeat: int) -> Timing:
    server, client = [], []
    size = 0
    for _ in range(repeat):
        began = time.perf_counter()
        r = http.get(path)
        client.append((time.perf_counter() - began) * 1000)
        server.append(timer.ms)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        size = len(r.content)
    return Timing(
        who,
        path,
        statistics.median(server),
        _pct(server, 0.99),
        statistics.median(client),
        size,
    )


def _pg_tool(name: str, *args: str) -> None:
    """Run pg_dump or pg_restore (from PATH, else the newest installed server's bin)."""
    found = shutil.which(name) or max(
        (str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")), default=name
    )
    subprocess.run([found, *args], check=True)  # noqa: S603 (our own arguments)


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as libpq (pg_dump, pg_restore) takes it."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def _database_url(db: str, fleet: str, data: Path, args: argparse.Namespace) -> str:
    if db == "sqlite":
        return f"sqlite:///{data / f'{fleet}.sqlite3'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        raise SystemExit(f"--db postgresql needs {POSTGRES_ENV} (scripts/with-postgres.sh)")
    if not args.reuse or args.load_pg:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    if args.load_pg:
        began = time.perf_counter()
        _pg_tool("pg_restore", "--no-owner", "--jobs=2", "--dbname", _libpq(url), str(args.load_pg))
        print(f"  restored {args.load_pg} in {time.perf_counter() - began:.0f} s", flush=True)
    return url


def _spec(fleet: str, scale: int) -> FleetSpec:
    if fleet == "demo":
        return FleetSpec(seed=2026, inference_chips_per_facility=48, idle_chips_per_facility=16)
    # 96 cluster chips + 5 x scale: two inference chips for each idle one, 500 going dark
    # after the second window (silent from the fourth: chip.silent findings).
    return FleetSpec(
        seed=2026,
        inference_chips_per_facility=2 * scale,
        idle_chips_per_facility=scale,
        dark_chips=min(500, 2 * scale),
        dark_after_window=2,
    )


def _fill(
    app: Any, server: BackgroundServer, fleet_name: str, args: argparse.Namespace, spool: Path
) -> str:
    """Build the fleet in the registry, run the agents and the verifier; returns as_of."""
    ctx = app.state.context
    with ctx.sessions() as s:
        admin = AccountService(s, utc_now).create_token("bench fill", Role.ADMIN).secret
        s.commit()
    began = time.perf_counter()
    fleet = build_fleet(_spec(fleet_name, args.scale))
    print(f"  built {len(fleet.chips)} chips in {time.perf_counter() - began:.0f} s", flush=True)
    start = fleet.epoch + timedelta(hours=1)
    began = time.perf_counter()
    if fleet_name == "demo":
        provisioned = provision_world(fleet, server.url, admin)
        stats = run_windows(provisioned, start, args.windows, WINDOW, spool)
        sent = stats.acknowledged
    else:
        provisioned = seed(ctx, server.url, admin, fleet, progress=lambda m: print(m, flush=True))
        print(f"  provisioned in {time.perf_counter() - began:.0f} s", flush=True)
        began = time.perf_counter()
        sent = send_reports(provisioned, start, args.windows, WINDOW)
    print(f"  {sent} reports accepted in {time.perf_counter() - began:.0f} s", flush=True)
    as_of = format_time(start + args.windows * WINDOW + timedelta(minutes=30))
    began = time.perf_counter()
    with httpx.Client(base_url=server.url, timeout=3600) as http:
        run = http.post(
            "/v1/verifier/runs",
            json={"policy": "demo", "as_of": as_of},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert run.status_code == 200, run.text[:500]
    print(f"  verifier: {run.json()} in {time.perf_counter() - began:.0f} s", flush=True)
    return as_of


def measure(db: str, fleet_name: str, args: argparse.Namespace, data: Path) -> Table:
    url = _database_url(db, fleet_name, data, args)
    app = create_app(
        Settings(
            database_url=url,
            log_key_file=data / "log-key",
            log_origin="bench.chipreg.local/log",
            checkpoint_interval_s=1,
        )
    )
    ctx = app.state.context
    timer = LastRequest()
    app.add_middleware(ServerTimer, sink=timer)
    statements = None if args.plans is None else Statements(ctx.engine)
    with BackgroundServer(app) as server:
        if not args.reuse:
            print(f"{db} / {fleet_name}: filling", flush=True)
            _fill(app, server, fleet_name, args, data / f"agents-{db}-{fleet_name}")
            if db == "postgresql" and args.save_pg:
                began = time.perf_counter()
                _pg_tool("pg_dump", "--format=custom", "--file", str(args.save_pg), _libpq(url))
                print(f"  saved {args.save_pg} in {time.perf_counter() - began:.0f} s", flush=True)
        # The read totals as the continuous verifier keeps them: one step over everything not
        # rolled up yet (the whole fleet at first), then an idle one.
        for _ in range(2):
            began = time.perf_counter()
            step = roll_up_totals(ctx.sessions, utc_now)
            print(
                f"  roll-up step: {step.reports} reports, {step.chips_reattributed} chips "
                f"attributed, {time.perf_counter() - began:.2f} s",
                flush=True,
            )
        with ctx.sessions() as s:
            accounts = AccountService(s, utc_now)
            admin = accounts.create_token("bench admin", Role.ADMIN).secret
            inspector = accounts.create_token("bench inspector", Role.INSPECTOR).secret
            s.commit()
        time.sleep(3)  # let the publisher cover the log
        api = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {inspector}"}, timeout=120
        )
        found = api.get("/v1/findings", params={"kind": "undeclared_cluster"}).json()
        f = found["findings"][0]
        chip = f["details"]["chip_ids"][0]
        facility = f["facility_id"]
        entry = f["evidence"][0]
        clusters = api.get("/v1/clusters").json()
        cluster = clusters["clusters"][0]["id"]
        chips_total = api.get("/v1/chips", params={"limit": 1}).json()["total"]
        middle = chips_total // 2
        deep = api.get("/v1/chips", params={"limit": 1, "offset": middle}).json()["chips"]
        halfway = deep[0]["chip_id"]  # a deep page: half the fleet in
        us = api.get("/v1/chips", params={"country": "US", "limit": 1}).json()
        us_half = api.get(
            "/v1/chips", params={"country": "US", "limit": 1, "offset": us["total"] // 2}
        ).json()["chips"]
        us_halfway = us_half[0]["chip_id"] if us_half else halfway
        findings_total = len(api.get("/v1/findings", params={"limit": 1000}).json()["findings"])
        console = httpx.Client(base_url=server.url, timeout=120)
        form = console.get("/console/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf
        console.post("/console/login", data={"csrf": csrf.group(1), "token": inspector})
        pages = [
            "/console",
            "/console/findings",
            f"/console/findings/{f['id']}",
            f"/console/log/{entry}",
            f"/console/chips/{chip}",
            f"/console/facilities/{facility}",
            f"/console/clusters/{cluster}",
            "/console/chips",
            f"/console/chips?after={halfway}",
            "/console/facilities",
            "/console/log",
            "/console/reports",
        ]
        queries = [
            "/v1/chips?country=FI",
            "/v1/chips?limit=100&offset=100",
            f"/v1/chips?limit=100&offset={middle}",
            f"/v1/chips?limit=100&after={halfway}",
            f"/v1/chips?facility_id={facility}&limit=100",
            # A country of several facilities (the large fleet's US: two), merged by chip id.
            "/v1/chips?country=US&limit=100",
            f"/v1/chips?country=US&limit=100&after={us_halfway}",
            f"/v1/chips?country=US&limit=100&offset={us['total'] // 2}",
            "/v1/clusters",
            "/v1/findings?kind=undeclared_cluster",
            "/v1/findings?kind=chip_silent&limit=100",
            f"/v1/findings/{f['id']}",
            f"/v1/chips/{chip}",
            f"/v1/chips/{chip}/series",
            f"/v1/facilities/{facility}/power-balance",
            f"/v1/facilities/{facility}",
            f"/v1/log/entries/{entry}/decoded",
            "/v1/inventory/aggregates",
        ]
        # An admin's reads are not recorded (no write per read): the cost of recording.
        unrecorded = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=120
        )
        table = Table(db, fleet_name, chips_total, findings_total, args.repeat, os.getloadavg()[0])
        for who, client, paths in (
            ("inspector", console, pages),
            ("inspector", api, queries),
            ("admin", unrecorded, queries),
        ):
            for path in paths:
                if args.only and not any(part in path for part in args.only):
                    continue
                table.rows.append(_time(client, timer, who, path, args.repeat))
                if statements is not None and who == "inspector":
                    statements.report(client, path, args.plans)
        table.load_after = os.getloadavg()[0]
    ctx.engine.dispose()
    return table


def _print(table: Table) -> None:
    print(
        f"\n{table.db}, {table.fleet}: {table.chips} chips, {table.findings} findings; "
        f"{table.repeat} requests each; load average (1 min) {table.load_before:.1f} before, "
        f"{table.load_after:.1f} after"
    )
    print(f"{'path':58} {'server p50':>10} {'server p99':>10} {'client p50':>10} {'bytes':>9}")
    for t in table.rows:
        print(
            f"{t.who + ' ' + t.path:58} {t.server_p50:10.1f} {t.server_p99:10.1f} "
            f"{t.client_p50:10.1f} {t.bytes:9d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"])
    parser.add_argument("--fleet", nargs="+", choices=["demo", "large"], default=["demo"])
    parser.add_argument("--scale", type=int, default=10_000, help="large fleet: 96 + 5 x scale")
    parser.add_argument("--keep", type=Path, help="keep the SQLite databases here")
    parser.add_argument("--reuse", action="store_true", help="measure kept databases as they are")
    parser.add_argument("--json", type=Path, help="also write the tables here")
    parser.add_argument("--save-pg", type=Path, help="PostgreSQL: pg_dump the built fleet here")
    parser.add_argument(
        "--load-pg", type=Path, help="PostgreSQL, with --reuse: restore this pg_dump first"
    )
    parser.add_argument("--only", nargs="+", help="measure only paths containing one of these")
    parser.add_argument(
        "--plans",
        type=float,
        metavar="MS",
        help="per path, list its SQL statements and the plans of those slower than MS",
    )
    args = parser.parse_args()
    if args.reuse and (args.keep is None or len(args.fleet) * len(args.db) > 1):
        parser.error("--reuse needs --keep and one --db and one --fleet")
    if args.load_pg and not args.reuse:
        parser.error("--load-pg needs --reuse")
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        data = args.keep or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        for fleet_name in args.fleet:
            for db in args.db:
                table = measure(db, fleet_name, args, data)
                _print(table)
                tables.append(table)
                if args.json:
                    args.json.write_text(
                        json.dumps(
                            [t.__dict__ | {"rows": [r.__dict__ for r in t.rows]} for t in tables],
                            indent=2,
                        )
                    )


if __name__ == "__main__":
    main()
