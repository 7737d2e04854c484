"""Bytes one acknowledged usage report costs in each store (docs/SCALE.md, issue 15).

Starts ``chipreg serve`` on a fresh SQLite file or an emptied PostgreSQL database, enrolls a
deterministic fleet of 8-chip hosts (each chip reports its 7 NVLink peers, as an HGX board
does), measures every table and index, posts ``--reports`` consecutive signed 15-minute reports
per chip, lets the publisher sign a checkpoint, and measures again. The difference divided by the
number of reports is what one report weighs in each table, in its indexes, in the log's entries
and tiles. Prints one JSON document.

    python -m loadtests.storage --db sqlite --chips 512 --reports 96
    scripts/with-postgres.sh python -m loadtests.storage --db postgresql --chips 512 --reports 96
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from attestation.report import (
    GENESIS_DIGEST,
    LinkKind,
    LinkTraffic,
    UsageReport,
    report_digest,
    sign_report,
)
from loadtests.fleet import T0, WINDOW, LoadChip, create_accounts, enroll, make_chips
from loadtests.server import add_database_arguments, chosen_database_url, start_registry

__all__ = ["main", "measure_sizes"]

HOST_CHIPS = 8
BATCH = 256


def _chain(chip: LoadChip, peers: Sequence[str], count: int) -> Iterator[bytes]:
    """``count`` consecutive signed reports of ``chip`` with one NVLink counter per peer."""
    prev, start = GENESIS_DIGEST, T0
    key_id = chip.key.public_key.key_id
    for seq in range(1, count + 1):
        # Deterministic, realistic-width counters (tens of GB per peer per window).
        base = int.from_bytes(hashlib.sha256(f"{chip.chip_id}:{seq}".encode()).digest()[:4])
        links = tuple(
            LinkTraffic(
                peer=peer,
                link=LinkKind.NVLINK,
                tx_bytes=40_000_000_000 + base + i,
                rx_bytes=41_000_000_000 + base + i,
            )
            for i, peer in enumerate(peers)
        )
        report = UsageReport(
            chip_id=chip.chip_id,
            key_id=key_id,
            seq=seq,
            prev_digest=prev,
            window_start=start,
            window_end=start + WINDOW,
            utilization=0.25 + 0.5 * ((seq * 7919) % 100) / 100,
            energy_j=0.5 * 700 * WINDOW.total_seconds(),
            interconnect=links,
        )
        envelope = sign_report(report, chip.key)
        prev, start = report_digest(envelope.payload), report.window_end
        yield envelope.to_json()


def measure_sizes(database_url: str) -> dict[str, dict[str, int]]:
    """Bytes per table: ``{"table": {"data": n, "indexes": n}}`` (SQLite pages or PostgreSQL)."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with sqlite3.connect(path) as conn:
            owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
            sizes: dict[str, dict[str, int]] = {}
            for name, pgsize in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                table = owner.get(name, name)
                part = "data" if name == table else "indexes"
                sizes.setdefault(table, {"data": 0, "indexes": 0})[part] += int(pgsize)
        return sizes
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT relname, pg_table_size(c.oid), pg_indexes_size(c.oid) "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            ).all()
    finally:
        engine.dispose()
    return {name: {"data": int(data), "indexes": int(idx)} for name, data, idx in rows}


def _checkpoint_settle(database_url: str) -> None:
    """Make sizes comparable: SQLite folds its WAL in; PostgreSQL rewrites every table compactly.

    Without ``VACUUM FULL`` PostgreSQL would count dead row versions (each report updates its
    chip's chain head; each append rewrites the partial tile) that plain ``VACUUM`` only marks
    reusable, and the difference between two measurements would say more about them than about
    what a report keeps.
    """
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split("///", 1)[1]) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM FULL ANALYZE"))
    finally:
        engine.dispose()


def run(database_url: str, workdir: Path, *, chips: int, reports: int) -> dict[str, object]:
    server = start_registry(database_url, workdir, workers=1, timeout=120)
    try:
        with httpx.Client(base_url=server.url, timeout=300) as http:
            accounts = create_accounts(http, server.admin_token)
            fleet = make_chips(chips, seed="storage")
            enroll(http, accounts, fleet, threads=4)
            _checkpoint_settle(database_url)
            before = measure_sizes(database_url)
            ids = [chip.chip_id for chip in fleet]
            chains = []
            for i, chip in enumerate(fleet):
                host = ids[i - i % HOST_CHIPS : i - i % HOST_CHIPS + HOST_CHIPS]
                chains.append(_chain(chip, [p for p in host if p != chip.chip_id], reports))
            headers = {"Authorization": f"Bearer {accounts.operator_token}"}
            sent = 0
            envelope_bytes = 0
            for _ in range(reports):
                round_bodies = [next(chain) for chain in chains]
                envelope_bytes += sum(len(b) for b in round_bodies)
                for start in range(0, len(round_bodies), BATCH):
                    body = b'{"reports":[' + b",".join(round_bodies[start : start + BATCH]) + b"]}"
                    response = http.post("/v1/reports/batch", content=body, headers=headers)
                    response.raise_for_status()
                    results = response.json()["results"]
                    bad = [r for r in results if r["status"] != "accepted"]
                    if bad:
                        msg = f"reports refused: {bad[:3]}"
                        raise RuntimeError(msg)
                    sent += len(results)
            time.sleep(3)  # one publisher period: the checkpoint over the last entries
        _checkpoint_settle(database_url)
        after = measure_sizes(database_url)
    finally:
        server.stop()
    per_report = {
        table: {
            part: round((after[table][part] - before.get(table, {}).get(part, 0)) / sent, 1)
            for part in ("data", "indexes")
        }
        for table in sorted(after)
        if after[table] != before.get(table)
    }
    total = sum(v["data"] + v["indexes"] for v in per_report.values())
    return {
        "db": "sqlite" if database_url.startswith("sqlite") else "postgresql",
        "chips": chips,
        "reports": sent,
        "peers_per_report": HOST_CHIPS - 1,
        "envelope_bytes_mean": round(envelope_bytes / sent, 1),
        "bytes_per_report": per_report,
        "bytes_per_report_total": round(total, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.storage", description=__doc__)
    add_database_arguments(p)
    p.add_argument("--chips", type=int, default=512, help="a multiple of 8 (hosts of 8 chips)")
    p.add_argument("--reports", type=int, default=96, help="consecutive reports per chip")
    args = p.parse_args(argv)
    if args.chips < HOST_CHIPS or args.chips % HOST_CHIPS or args.reports < 1:
        p.error("--chips must be a positive multiple of 8 and --reports positive")
    with tempfile.TemporaryDirectory(prefix="chipreg-storage-") as tmp:
        workdir = Path(tmp)
        url = chosen_database_url(p, args, workdir)
        result = run(url, workdir, chips=args.chips, reports=args.reports)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
