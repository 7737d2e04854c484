"""Bulk enrollment: how long a fleet of endorsed chips takes to enroll through the API.

Starts ``chipreg serve`` on a fresh SQLite file (or a PostgreSQL database, its schema dropped
first), creates a vendor with its root, endorses ``--chips`` chip keys with it here (not
timed), then times ``POST /v1/chips/batch`` calls of 10,000 chips each, one after another, as
a manufacturer's ``chipreg vendor enroll`` sends them. Every chip is checked and logged by the
registry as a single ``POST /v1/chips`` would (certificate chain to the vendor root, chip id
and key not enrolled) and the run ends by checking the log holds one enrollment record per
chip. Prints the wall time, chips/s, the registry's CPU time per chip and the machine's load
average.

    python -m loadtests.bench_enroll --db sqlite --chips 100000
    scripts/with-postgres.sh python -m loadtests.bench_enroll --db postgresql
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from loadtests import fleet
from loadtests.server import add_database_arguments, chosen_database_url, start_registry

__all__ = ["main"]


def bench(p: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="chipreg-enroll-", dir=args.workdir))
    database_url = chosen_database_url(p, args, workdir)
    server = start_registry(database_url, workdir, workers=args.workers)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            began = time.perf_counter()
            chips = fleet.make_chips(args.chips, args.seed)
            accounts = fleet.create_accounts(http, server.admin_token, args.seed)
            items = fleet.chip_items(accounts, chips)
            prepared = time.perf_counter() - began
            print(f"{args.chips} chips endorsed here in {prepared:.1f} s (not timed)", flush=True)
            size_before = _log_size(http)
            load_before = os.getloadavg()[0]
            cpu_before = server.cpu_seconds()
            seconds = fleet.enroll_items(http, accounts, items)
            cpu = server.cpu_seconds() - cpu_before
            load_after = os.getloadavg()[0]
            logged = _log_size(http) - size_before
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    total = sum(seconds)
    result: dict[str, object] = {
        "db": args.db,
        "chips": args.chips,
        "calls": len(seconds),
        "seconds": round(total, 1),
        "chips_per_s": round(args.chips / total),
        "slowest_call_s": round(max(seconds), 2),
        "registry_cpu_us_per_chip": round(1e6 * cpu / args.chips),
        "enrollment_records_logged": logged,
        "load_average_1m": [round(load_before, 2), round(load_after, 2)],
    }
    if logged != args.chips:
        raise SystemExit(f"the log grew by {logged} entries, not one per chip ({args.chips})")
    return result


def _log_size(http: httpx.Client) -> int:
    """The sequenced size: the integrated checkpoint may lag; wait until it is published."""
    deadline = time.monotonic() + 30
    size = -1
    while time.monotonic() < deadline:
        latest = int(http.get("/v1/log/checkpoint").text.splitlines()[1])
        if latest == size:
            return size
        size = latest
        time.sleep(1.5)
    return size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.bench_enroll",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_arguments(p)
    p.add_argument("--chips", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2, help="chipreg serve --workers")
    p.add_argument("--seed", default="enroll")
    p.add_argument("--workdir", help="parent of the temporary run directory")
    p.add_argument("--json-out", help="also write the result to this file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.chips < 1:
        print("--chips must be at least 1", file=sys.stderr)
        return 2
    result = bench(p, args)
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
