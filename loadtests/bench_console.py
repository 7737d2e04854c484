"""Time the console's pages and the inspector read API on the demo's data.

Builds the demo fleet (``chipreg demo``: about 300 chips, 8 windows, one verifier run) in a
SQLite registry on a loopback port, logs in as an inspector, then requests each page and each
query ``--repeat`` times, one at a time, and prints p50 / p99 / max of the response time as the
client sees it (loopback HTTP included: an upper bound of the server time).

    .venv/bin/python -m loadtests.bench_console --repeat 100
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

from agents.simulator.fleet import FleetSpec, build_fleet
from agents.simulator.provision import provision
from agents.simulator.run import run_windows
from attestation.timefmt import format_time
from registry.api.app import create_app
from registry.api.context import utc_now
from registry.auth import Role
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.settings import Settings

WINDOW = timedelta(minutes=15)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _time(http: httpx.Client, path: str, repeat: int) -> tuple[float, float, float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        r = http.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return statistics.median(samples), _pct(samples, 0.99), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--windows", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        app = create_app(
            Settings(
                database_url=f"sqlite:///{data / 'r.sqlite3'}",
                log_key_file=data / "log-key",
                log_origin="bench.chipreg.local/log",
            )
        )
        ctx = app.state.context
        with ctx.sessions() as s:
            accounts = AccountService(s, utc_now)
            admin = accounts.create_token("bench admin", Role.ADMIN).secret
            inspector = accounts.create_token("bench inspector", Role.INSPECTOR).secret
            s.commit()
        with BackgroundServer(app) as server:
            fleet = build_fleet(
                FleetSpec(seed=2026, inference_chips_per_facility=48, idle_chips_per_facility=16)
            )
            provisioned = provision(fleet, server.url, admin)
            start = fleet.installed_at + timedelta(hours=1)
            run_windows(provisioned, start, args.windows, WINDOW, data / "agents")
            api = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {inspector}"}, timeout=60
            )
            as_of = format_time(start + args.windows * WINDOW)
            api.post("/v1/verifier/runs", json={"policy": "demo", "as_of": as_of})
            finding = api.get("/v1/findings", params={"kind": "undeclared_cluster"}).json()
            f = finding["findings"][0]
            chip = f["details"]["chip_ids"][0]
            time.sleep(2)  # let the publisher cover the log

            console = httpx.Client(base_url=server.url, timeout=60)
            form = console.get("/console/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf
            console.post("/console/login", data={"csrf": csrf.group(1), "token": inspector})
            entry = f["evidence"][0]
            pages = [
                "/console",
                "/console/findings",
                f"/console/findings/{f['id']}",
                f"/console/log/{entry}",
                f"/console/chips/{chip}",
                f"/console/facilities/{f['facility_id']}",
                "/console/chips",
                "/console/facilities",
                "/console/log",
            ]
            queries = [
                "/v1/chips?country=FI",
                "/v1/chips?limit=100&offset=100",
                "/v1/clusters",
                "/v1/findings?kind=undeclared_cluster",
                f"/v1/findings/{f['id']}",
                f"/v1/chips/{chip}",
                f"/v1/chips/{chip}/series",
                f"/v1/facilities/{f['facility_id']}/power-balance",
                f"/v1/log/entries/{entry}/decoded",
                "/v1/inventory/aggregates",
            ]
            # An admin's reads are not recorded (no write per read): the cost of recording.
            unrecorded = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=60
            )
            print(f"{len(fleet.chips)} chips, {args.windows} windows; {args.repeat} requests each")
            print(f"{'path':50} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
            for who, client, paths in (
                ("inspector", console, pages),
                ("inspector", api, queries),
                ("admin", unrecorded, queries),
            ):
                for path in paths:
                    p50, p99, top = _time(client, path, args.repeat)
                    print(f"{who + ' ' + path:50} {p50:8.1f} {p99:8.1f} {top:8.1f}")
        ctx.engine.dispose()


if __name__ == "__main__":
    main()
