"""Benchmark the transparency log: append cost per entry and proof latency on a large log.

    python -m loadtests.bench_log --entries 1000000 --db sqlite
    python -m loadtests.bench_log --entries 1000000 --db postgresql --database-url URL

Appends ``--entries`` entries of ``--body-bytes`` random bytes in batches of ``--batch`` (one
transaction each, as ingest does: lock, append, commit), then times inclusion and consistency
proofs against the full tree through ``TransparencyLog`` (stored tiles), and, for contrast,
one proof computed the old way from every leaf hash.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, text

from attestation import merkle
from attestation.keys import PrivateKey
from attestation.note import NoteSigner
from registry.db.engine import make_engine, make_session_factory
from registry.db.migrate import upgrade
from registry.db.models import LogEntry
from registry.services.log import LogSigner, TransparencyLog


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"p50 {statistics.median(samples) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--body-bytes", type=int, default=600)
    ap.add_argument("--proofs", type=int, default=200)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--database-url", default=os.environ.get("CHIPREG_TEST_POSTGRES_URL", ""))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="chipreg-bench-log-"))
    url = f"sqlite:///{tmp / 'log.sqlite3'}" if args.db == "sqlite" else args.database_url
    engine = make_engine(url)
    if args.db == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    sessions = make_session_factory(engine)
    signer = LogSigner("bench/log", NoteSigner("bench/log", PrivateKey.generate()))
    rng = random.Random(1)
    now = datetime.now(UTC).replace(microsecond=0)

    body = rng.randbytes(args.body_bytes)
    batches = []
    began = time.perf_counter()
    appended = 0
    while appended < args.entries:
        n = min(args.batch, args.entries - appended)
        bodies = [body + appended.to_bytes(8, "big") + i.to_bytes(4, "big") for i in range(n)]
        t0 = time.perf_counter()
        with sessions() as session:
            log = TransparencyLog(session, signer)
            log.lock()
            log.append("bench", bodies, now)
            session.commit()
        batches.append(time.perf_counter() - t0)
        appended += n
    total = time.perf_counter() - began
    per_entry = [b / args.batch for b in batches]
    print(
        f"append: {args.entries} entries in {total:.1f} s = {args.entries / total:,.0f}/s; "
        f"per entry {statistics.mean(per_entry) * 1e6:.1f} us mean "
        f"(batches of {args.batch}: {_ms(batches)})"
    )
    late = batches[-max(1, len(batches) // 10) :]
    print(f"append, last 10% of batches: {_ms(late)} per batch")

    size = args.entries
    incl, cons = [], []
    with sessions() as session:
        log = TransparencyLog(session, signer)
        root = log.head()[1]
        for _ in range(args.proofs):
            index = rng.randrange(size)
            t0 = time.perf_counter()
            proof = log.inclusion_proof(index, size)
            incl.append(time.perf_counter() - t0)
            leaf = session.scalar(select(LogEntry.leaf_hash).where(LogEntry.index == index))
            assert leaf is not None
            merkle.verify_inclusion(
                leaf_hash=bytes(leaf), index=index, tree_size=size, proof=proof, root=root
            )
            first = rng.randrange(1, size)
            t0 = time.perf_counter()
            log.consistency_proof(first, size)
            cons.append(time.perf_counter() - t0)
        print(f"inclusion proof at size {size:,} from tiles: {_ms(incl)}")
        print(f"consistency proof at size {size:,} from tiles: {_ms(cons)}")
        t0 = time.perf_counter()
        leaves = log.repo.leaf_hashes(size)
        merkle.inclusion_proof(size // 3, leaves)
        print(f"for contrast, one proof from all leaf hashes: {time.perf_counter() - t0:.2f} s")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
