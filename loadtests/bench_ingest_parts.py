"""Issue 15's ingest changes, each against what it replaced, alternately in one process.

On a busy shared machine two runs of the whole path differ by more than these changes save;
measured here side by side (thread CPU time, the old and new version alternately, best of
``--rounds``), they do not. The old versions are kept here, for this comparison only:

- the strict parse of a 256-report batch body (with its depth bound) and of each signed
  statement: the JSON decoder with hooks (and a walk for the depth) vs
  :func:`attestation._json.loads_strict` (canonical documents through orjson);
- the chain-head query of a group: with the correlated ``min(installed_at)`` subquery per chip
  vs the ``chips.first_installed_at`` column;
- the chain-head update of a group on PostgreSQL: one ``UPDATE`` per chip in a pipeline
  (``executemany``) vs one ``UPDATE ... FROM unnest`` of binary arrays.

Usage::

    python -m loadtests.bench_ingest_parts --db sqlite
    scripts/with-postgres.sh python -m loadtests.bench_ingest_parts --db postgresql --reset
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from attestation import _json
from loadtests.profile_ingest import _setup
from loadtests.server import reset_postgres
from registry.db.models import Chip, Facility, Installation
from registry.repositories.chips import ChipIngestState, ChipRepository

__all__ = ["main"]


def _best(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        fn()
        best = min(best, time.thread_time() - started)
    return best


def _old_ingest_states(session: Session, ids: list[str]) -> dict[str, ChipIngestState]:
    """The chain-head query as it was: first installation by a correlated subquery."""
    current = and_(Installation.chip_id == Chip.chip_id, Installation.removed_at.is_(None))
    first = (
        select(func.min(Installation.installed_at))
        .where(Installation.chip_id == Chip.chip_id)
        .correlate(Chip)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Chip.chip_id,
            Chip.public_key,
            Chip.last_seq,
            Chip.last_digest,
            Chip.last_window_end,
            Chip.last_log_index,
            Facility.operator_id,
            Chip.decommissioned_at,
            Chip.revoked_at,
            first,
        )
        .outerjoin(Installation, current)
        .outerjoin(Facility, Facility.id == Installation.facility_id)
        .where(Chip.chip_id.in_(ids))
    )
    return {
        row[0]: ChipIngestState(row[0], bytes(row[1]), *row[2:7], row[7], row[8], row[9])
        for row in rows
    }


def _old_update_heads(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """The PostgreSQL chain-head update as it was: one UPDATE per chip, executemany."""
    columns = [c for c in rows[0] if c != "chip_id"]
    sets = ", ".join(f'"{c}" = %s' for c in columns)
    session.connection().exec_driver_sql(
        f'UPDATE "chips" SET {sets} WHERE "chip_id" = %s',  # noqa: S608 (fixed names)
        [tuple(r[c] for c in [*columns, "chip_id"]) for r in rows],
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_ingest_parts", description=__doc__)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--reset", action="store_true", help="PostgreSQL: drop the public schema")
    p.add_argument("--chips", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    out: dict[str, Any] = {"db": args.db, "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="chipreg-parts-") as tmp:
        if args.db == "postgresql":
            url = os.environ["CHIPREG_TEST_POSTGRES_URL"]
            if args.reset:
                reset_postgres(url)
        else:
            url = f"sqlite:///{Path(tmp) / 'registry.sqlite3'}"
        context, _, bodies = _setup(url, Path(tmp), args.chips, 2, 256)
        body = bodies[0]
        statements = [
            base64.b64decode(env["payload"]) for b in bodies[:4] for env in json.loads(b)["reports"]
        ]
        n = len(json.loads(body)["reports"])

        def hooked(data: bytes) -> object:
            return _json._STRICT.decode(data.decode("ascii"))

        for name, old, new, per in (
            (
                "body_parse",
                lambda: _json.deeper_than(hooked(body), 32),
                lambda: _json.loads_strict(body, "body", max_depth=32),
                n,
            ),
            (
                "statement_parse",
                lambda: [hooked(s) for s in statements],
                lambda: [_json.loads_strict(s, "statement") for s in statements],
                len(statements),
            ),
        ):
            out[name] = {
                "old_us": round(1e6 * _best(old, args.rounds) / per, 2),
                "new_us": round(1e6 * _best(new, args.rounds) / per, 2),
            }
        with context.sessions() as session:
            ids = list(session.scalars(select(Chip.chip_id)))
            repo = ChipRepository(session)
            old_s = new_s = float("inf")
            for _ in range(args.rounds):  # alternately, so both see the same neighbours
                old_s = min(old_s, _best(lambda: _old_ingest_states(session, ids), 1))
                new_s = min(new_s, _best(lambda: repo.ingest_states(ids), 1))
            out["chain_heads_query"] = {
                "old_us": round(1e6 * old_s / len(ids), 2),
                "new_us": round(1e6 * new_s / len(ids), 2),
            }
            if args.db == "postgresql":
                heads = [
                    {
                        "chip_id": c,
                        "last_seq": 0,
                        "last_digest": "0" * 64,
                        "last_window_end": None,
                        "last_log_index": None,
                    }
                    for c in ids
                ]
                old_s = new_s = float("inf")
                for _ in range(args.rounds):
                    old_s = min(old_s, _best(lambda: _old_update_heads(session, heads), 1))
                    new_s = min(new_s, _best(lambda: repo.update_heads(heads), 1))
                out["chain_heads_update"] = {
                    "old_us": round(1e6 * old_s / len(ids), 2),
                    "new_us": round(1e6 * new_s / len(ids), 2),
                }
            session.rollback()
        context.engine.dispose()
    out["loadavg_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
