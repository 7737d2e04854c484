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
  (``executemany``) vs one ``UPDATE ... FROM unnest`` of binary arrays;
- sequence first, integrate after: the log's part of the lock-held section per entry, the
  append with leaf hashes, compact range and tiles (as it was, integrated in the writer's
  transaction) vs the sequencing insert with the leaf hashes the request threads computed;
- the chain heads of a group after another worker process's group: the head query for the
  group's chips (what a writer that kept nothing does) vs catching up from the other group's
  report rows (``SequencerState``: the kinds check and the heads those rows moved).

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

from attestation import _json, merkle
from loadtests.profile_ingest import _setup, run_batches
from loadtests.server import reset_postgres
from registry.api.context import utc_now
from registry.db.models import Chip, Facility, Installation
from registry.repositories.chips import ChipIngestState, ChipRepository
from registry.repositories.log import LogRepository
from registry.repositories.reports import ReportRepository
from registry.services.log import LogAppender, integrate
from registry.services.sequencer_state import KeyCache, SequencerState

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


def _sequencing_parts(
    context: Any, token: str, bodies: Sequence[bytes], rounds: int, out: dict[str, Any]
) -> None:
    """The two sequencing parts (see the module docstring), on one group of reports."""
    # One group of real reports, ingested and integrated: its rows and entries are the input.
    group = bodies[: min(4, len(bodies))]
    run_batches(context, token, group, len(group), KeyCache(), SequencerState())
    with context.sessions() as session:
        log = LogRepository(session)
        size = log.sequenced_size()
        n = sum(len(json.loads(b)["reports"]) for b in group)
        entries = log.entries(size - n, size)
        envelopes = [bytes(e.body) for e in entries]
        leaves = [bytes(e.leaf_hash) for e in entries]
        chip_ids = sorted({r[0] for r in ReportRepository(session).heads_between(size - n, size)})
        session.rollback()

    def integrated_append() -> None:  # as it was: the tree work inside the writer's lock
        with context.sessions() as s:
            LogAppender(s).append("usage_report", envelopes, utc_now())
            integrate(s, utc_now())
            s.rollback()

    def sequenced_append() -> None:  # now: leaf hashes from the request threads
        with context.sessions() as s:
            LogAppender(s).append("usage_report", envelopes, utc_now(), leaves)
            s.rollback()

    def head_query() -> None:
        with context.sessions() as s:
            ChipRepository(s).ingest_states(chip_ids)

    def catch_up() -> None:
        state = SequencerState()
        with context.sessions() as s:
            state.chips = ChipRepository(s).ingest_states(chip_ids)
            state.size = size - n
            started = time.thread_time()
            if LogRepository(s).only_kinds(size - n, size, {"usage_report", "rejected_report"}):
                state.catch_up(ReportRepository(s).heads_between(size - n, size), size)
            spent.append(time.thread_time() - started)

    spent: list[float] = []
    best = {"integrated_append": float("inf"), "sequenced_append": float("inf"), "query": 1e9}
    for _ in range(rounds):  # alternately, so both see the same neighbours
        best["integrated_append"] = min(best["integrated_append"], _best(integrated_append, 1))
        best["sequenced_append"] = min(best["sequenced_append"], _best(sequenced_append, 1))
        best["query"] = min(best["query"], _best(head_query, 1))
        catch_up()
    # The leaf hashes the sequenced append takes ready-made, computed on the request threads.
    hashing = _best(lambda: [merkle.leaf_hash(e) for e in envelopes], rounds)
    out["log_append_in_lock"] = {
        "old_us": round(1e6 * best["integrated_append"] / n, 2),
        "new_us": round(1e6 * best["sequenced_append"] / n, 2),
        "leaf_hash_moved_to_request_threads_us": round(1e6 * hashing / n, 2),
    }
    out["chain_heads_after_other_writer"] = {
        "old_us": round(1e6 * best["query"] / n, 2),
        "new_us": round(1e6 * min(spent) / n, 2),
        "reports": n,
        "chips": len(chip_ids),
    }


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
        context, token, bodies = _setup(url, Path(tmp), args.chips, 2, 256)
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
        _sequencing_parts(context, token, bodies, args.rounds, out)
        context.engine.dispose()
    out["loadavg_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
