"""Time one verification pass over a fleet window, for growing fleet sizes, on one core.

The fleet: nodes of 8 H100, all-to-all over NVLink inside a node (7 peers, ~400 Gbit/s each),
and a rail-aligned InfiniBand ring across the nodes of each 1,024-chip training block (2 more
peers, ~200 Gbit/s): 9 link claims per chip, every link reported by both ends. Each block is a
declared cluster. Facts are built first (the registry's job); only ``verifier.engine.run`` is
timed, with every rule of the default policy enabled.

    .venv/bin/python -m loadtests.bench_verifier --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import UTC, datetime, timedelta

from verifier.engine import run
from verifier.facts import ChipFact, DeclaredClusterFact, LinkFact, ReportFact, Snapshot
from verifier.policy import load_builtin_policy

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
BLOCK = 1024
PER_NODE = 8


def build(n: int) -> Snapshot:
    """A fleet of ``n`` chips (a multiple of 8) with one 15-minute window of reports."""
    ids = [f"H100-{i:08d}" for i in range(n)]
    seconds = WINDOW.total_seconds()
    nv = int(400e9 * seconds / 8) // 2
    ib = int(200e9 * seconds / 8) // 2
    chips = {
        c: ChipFact(
            c, "H100-SXM5-80GB", 989e12, 1 + i // 100_000, "US", T0 - timedelta(days=30), 700.0
        )
        for i, c in enumerate(ids)
    }
    reports = []
    for i, c in enumerate(ids):
        node = i - i % PER_NODE
        links = [LinkFact(ids[j], "nvlink", nv, nv) for j in range(node, node + PER_NODE) if j != i]
        block = i - i % BLOCK
        size = min(BLOCK, n - block)
        nodes = size // PER_NODE
        if nodes > 1:
            rel = i - block
            for step in (PER_NODE, -PER_NODE):
                j = block + (rel + step) % (nodes * PER_NODE)
                if j != i:
                    links.append(LinkFact(ids[j], "infiniband", ib, ib))
        reports.append(ReportFact(c, 1, T0, T0 + WINDOW, 0.9, 600.0 * seconds, tuple(links), i))
    clusters = [
        DeclaredClusterFact(
            b // BLOCK,
            f"block-{b // BLOCK}",
            frozenset(ids[b : b + BLOCK]),
            T0 - timedelta(days=1),
            T0 + timedelta(days=1),
            1,
        )
        for b in range(0, n, BLOCK)
    ]
    return Snapshot(chips, reports, clusters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--policy", default="default")
    args = parser.parse_args()
    policy = load_builtin_policy(args.policy)
    print("| chips | link claims | build facts (s) | verify (s) | findings |")
    print("|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        began = time.perf_counter()
        snapshot = build(n - n % PER_NODE)
        built = time.perf_counter() - began
        claims = sum(len(r.links) for r in snapshot.reports)
        gc.collect()
        gc.disable()
        began = time.perf_counter()
        findings = run(snapshot, policy, T0 + WINDOW)
        took = time.perf_counter() - began
        gc.enable()
        print(f"| {n:,} | {claims:,} | {built:.1f} | {took:.2f} | {len(findings)} |", flush=True)
        del snapshot, findings
        gc.collect()


if __name__ == "__main__":
    main()
