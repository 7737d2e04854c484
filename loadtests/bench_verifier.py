"""Time one verification pass over a fleet window, for growing fleet sizes, on one core.

The fleet is what the registry's snapshot holds for a real fleet (every fact the rules read):

* facilities of 65,536 H100 at eight sites in five countries (the first one, from 131,072 chips
  on, a 131,072-chip campus), each with a declared PUE, a power meter posting one honest reading
  per window, and a landmark nearby;
* in each facility, declared training clusters (32,768, 2 x 8,192, 4,096, 2 x 2,048, 2 x 1,024
  chips; the campus: one 114,688-chip cluster, above the 1e20 OP/s threshold, plus 8,192 and
  4,096) and the rest inference nodes, a quarter of them idle;
* links: nodes of 8 all-to-all over NVLink (7 peers, ~400 Gbit/s each way), and in training
  clusters a rail-aligned 2-D InfiniBand torus across nodes (4 more peers, ~100 Gbit/s each
  way): 11 link claims per training chip, 7 per busy inference chip, about 10.4 on average,
  every link reported by both ends with matching counts;
* one accepted report per chip and window (utilization, energy, facility claim, digest,
  sender), one installation per chip, transfer conditions on every chip, landmark round trips
  for 1 chip in 100 (two landmarks each), an agent retry for 1 report in 1,000.

Facts are built first (the registry's job, timed separately); only ``verifier.engine.run`` is
timed, with every rule of the chosen policy enabled, garbage collection paused. The same facts
are then put in an evidence ledger and cut once by :func:`verifier.ledger.snapshot` (CPU time
reported as ``ledger_snapshot_cpu_s``: what choosing a run's inputs costs).
``--plant`` adds one instance of every playbook violation (for profiling the finding paths and
for checking that an optimisation changes no finding).

    .venv/bin/python -m loadtests.bench_verifier --sizes 10000 100000 300000 1000000
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from verifier.engine import run
from verifier.facts import (
    ChipFact,
    DeclaredClusterFact,
    FacilityFact,
    InstallationFact,
    LandmarkFact,
    LinkFact,
    MeterFact,
    MeterReadingFact,
    ReportFact,
    RttMeasurementFact,
    Snapshot,
    SubmissionFact,
)
from verifier.ledger import (
    ChipRecord,
    ClusterRecord,
    ConditionRecord,
    FacilityRecord,
    InstallationRecord,
    LandmarkRecord,
    Ledger,
    MeterRecord,
)
from verifier.ledger import snapshot as cut
from verifier.policy import load_builtin_policy

__all__ = ["BIG", "SMALL", "Layout", "build"]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
PER_NODE = 8
PEAK_OPS = 989e12
PEAK_W = 700.0
HOST_OVERHEAD = 0.25  # the default policy's power.ghost_chips host_overhead_fraction
# (country, latitude, longitude, PUE) of the sites; a landmark sits ~150 km from each.
SITES = (
    ("US", 32.4487, -99.7331, 1.3),
    ("US", 39.0438, -77.4874, 1.25),
    ("FI", 60.5693, 27.1878, 1.2),
    ("IE", 53.3147, -6.4370, 1.3),
    ("US", 45.5946, -121.1787, 1.15),
    ("SG", 1.3521, 103.8198, 1.4),
    ("JP", 35.6762, 139.6503, 1.35),
    ("FI", 63.8415, 23.1300, 1.15),
)
ALLOWED = frozenset({"US", "FI", "IE", "SG", "JP"})


@dataclass(frozen=True)
class Layout:
    """Chips per facility and the declared training clusters in it (the rest is inference);
    ``campus`` is the first facility's (chips, clusters) when the fleet is big enough."""

    facility_chips: int
    clusters: tuple[int, ...]
    campus: tuple[int, tuple[int, ...]] | None = None


BIG = Layout(
    65_536,
    (32_768, 8_192, 8_192, 4_096, 2_048, 2_048, 1_024, 1_024),
    (131_072, (114_688, 8_192, 4_096)),
)
SMALL = Layout(2_048, (1_024, 256, 256, 128), (4_096, (2_048, 1_024, 512)))
"""A scaled-down fleet (demo-policy thresholds) for determinism checks."""


def _torus_peers(rel: int, size: int) -> list[int]:
    """InfiniBand peers of position ``rel`` in a cluster of ``size`` chips: same rail (same
    position in the node), neighbouring nodes along two ring dimensions."""
    nodes = size // PER_NODE
    if nodes < 2:
        return []
    steps = [PER_NODE, -PER_NODE]
    if nodes > 16:
        steps += [16 * PER_NODE, -16 * PER_NODE]
    out: list[int] = []
    for step in steps:
        j = (rel + step) % size
        if j != rel and j not in out:
            out.append(j)
    return out


def build(
    n: int,
    *,
    layout: Layout = BIG,
    windows: int = 1,
    plant: bool = False,
) -> Snapshot:
    """A fleet of ``n`` chips (rounded down to whole nodes) with ``windows`` report windows."""
    n -= n % PER_NODE
    ids = [f"H100-{i:08d}" for i in range(n)]
    seconds = WINDOW.total_seconds()
    installed = T0 - timedelta(days=30)
    # Per-pair byte counts come from small pools, so millions of links share a few int objects.
    nv_pool = [int((400e9 + k * 1e8) * seconds / 8) for k in range(61)]
    ib_pool = [int((100e9 + k * 1e8) * seconds / 8) for k in range(61)]

    # Facilities and roles: role[i] = (facility, cluster index or -1, position, cluster size).
    facilities: dict[int, FacilityFact] = {}
    facility_of = [0] * n
    cluster_of = [-1] * n
    cluster_rel = [0] * n
    cluster_size: list[int] = []
    cluster_start: list[int] = []
    cluster_facility: list[int] = []
    start = 0
    fid = 0
    while start < n:
        fid += 1
        size, sizes = layout.facility_chips, layout.clusters
        if fid == 1 and layout.campus is not None and n >= layout.campus[0]:
            size, sizes = layout.campus
        size = min(size, n - start)
        country, lat, lon, pue = SITES[(fid - 1) % len(SITES)]
        facilities[fid] = FacilityFact(
            fid, fid, country, lat + fid * 0.01, lon, size * 1.0, pue, 50.0, f"site-{fid}"
        )
        pos = start
        for c in sizes:
            if pos + c > start + size:
                continue
            cid = len(cluster_size)
            cluster_size.append(c)
            cluster_start.append(pos)
            cluster_facility.append(fid)
            for k in range(c):
                cluster_of[pos + k] = cid
                cluster_rel[pos + k] = k
            pos += c
        for i in range(start, start + size):
            facility_of[i] = fid
        start += size

    chips = {
        c: ChipFact(
            c,
            "H100-SXM5-80GB",
            PEAK_OPS,
            facility_of[i],
            facilities[facility_of[i]].country,
            installed,
            PEAK_W,
            "NVIDIA",
            ALLOWED,
            facility_of[i],
        )
        for i, c in enumerate(ids)
    }
    installations = [
        InstallationFact(c, facility_of[i], installed, None, 10 * n + i) for i, c in enumerate(ids)
    ]

    # Link claims per chip (independent of the window).
    links_of: list[list[LinkFact]] = []
    util_of: list[float] = []
    for i in range(n):
        cid = cluster_of[i]
        node = i - i % PER_NODE
        inference = cid < 0
        idle = inference and (node // PER_NODE) % 4 == 3
        if idle:
            links_of.append([])
            util_of.append(0.02)
            continue
        links = [
            LinkFact(ids[j], "nvlink", nv_pool[(i + 3 * j) % 61], nv_pool[(j + 3 * i) % 61])
            for j in range(node, node + PER_NODE)
            if j != i
        ]
        if not inference:
            base, size = cluster_start[cid], cluster_size[cid]
            for rel in _torus_peers(cluster_rel[i], size):
                j = base + rel
                links.append(
                    LinkFact(
                        ids[j], "infiniband", ib_pool[(i + 3 * j) % 61], ib_pool[(j + 3 * i) % 61]
                    )
                )
        links_of.append(links)
        util_of.append(0.5 if inference else 0.80 + (i % 11) * 0.01)

    clusters = [
        DeclaredClusterFact(
            cid,
            f"training-{cid}",
            frozenset(ids[cluster_start[cid] : cluster_start[cid] + cluster_size[cid]]),
            T0 - timedelta(days=1),
            T0 + timedelta(days=7),
            cluster_facility[cid],
            1e26,
            (),
            20 * n + cid,
        )
        for cid in range(len(cluster_size))
    ]

    # Violations (only with plant=True); chips picked from the fleet's layout.
    silent_chip = -1
    extra_reports: list[ReportFact] = []
    submissions: list[SubmissionFact] = []
    ghost_facility = -1
    rtt_liar = -1
    if plant:
        first = cluster_start[0]
        second = cluster_start[1] if len(cluster_start) > 1 else first
        # Undeclared cluster: the declaration of the fleet's second cluster is missing.
        if len(clusters) > 1:
            clusters.pop(1)
        # Budget: the first cluster declared a tiny budget.
        c0 = clusters[0]
        clusters[0] = DeclaredClusterFact(
            c0.cluster_id,
            c0.name,
            c0.chip_ids,
            c0.start,
            c0.end,
            c0.facility_id,
            1e20,
            (),
            c0.log_index,
        )
        # One-sided: a claim with an unregistered peer, one the peer never mentions, and a pair
        # whose two ends disagree.
        links_of[first + 1].append(
            LinkFact("H100-ROGUE-0001", "infiniband", ib_pool[0], ib_pool[1])
        )
        links_of[first + 2].append(LinkFact(ids[second + 5], "ethernet", 10**12, 10**12))
        a, b = first + 16, first + 17
        links_of[a] = [
            LinkFact(x.peer, x.link, x.tx_bytes * 3, x.rx_bytes * 3) if x.peer == ids[b] else x
            for x in links_of[a]
        ]
        # Under-reporting (peers' side): a training chip claims to be idle.
        util_of[first + 24] = 0.01
        # Above peak: utilization, and energy.
        util_of[first + 32] = 1.3
        # Split: two idle inference nodes at facility 1 linked above 100 Gbit/s, one of them
        # linked at 30 Gbit/s to an idle node at facility 2.
        idle_nodes = [i for i in range(0, n, PER_NODE) if cluster_of[i] < 0 and not links_of[i]]
        f1 = [i for i in idle_nodes if facility_of[i] == 1][:2]
        f2 = [i for i in idle_nodes if facility_of[i] == 2][:1]
        if len(f1) == 2 and f2:
            x, y, z = f1[0], f1[1], f2[0]
            for node in (x, y, z):
                for k in range(node, node + PER_NODE):
                    util_of[k] = 0.6
                    links_of[k] = [
                        LinkFact(ids[j], "nvlink", nv_pool[0], nv_pool[0])
                        for j in range(node, node + PER_NODE)
                        if j != k
                    ]
            site = int(15e9 * seconds / 8)
            links_of[x].append(LinkFact(ids[y], "infiniband", ib_pool[2], ib_pool[2]))
            links_of[y].append(LinkFact(ids[x], "infiniband", ib_pool[2], ib_pool[2]))
            links_of[y].append(LinkFact(ids[z], "ethernet", site, site))
            links_of[z].append(LinkFact(ids[y], "ethernet", site, site))
        silent_chip = first + 40
        ghost_facility = 1
        rtt_liar = first + 105  # a chip measured by landmarks (every 100th from 5)
        # Clone: a second accepted report for one window with other content; a rejected
        # different report reusing a sequence number.
        clone = first + 56
        extra_reports.append(
            ReportFact(
                ids[clone],
                1,
                T0,
                T0 + WINDOW,
                0.3,
                300.0 * seconds,
                (),
                30 * n,
                facility_of[clone],
                "ff" * 32,
                T0 + WINDOW,
                "operator:99",
            )
        )
        submissions.append(
            SubmissionFact(
                ids[first + 64],
                1,
                "ee" * 32,
                T0,
                T0 + WINDOW,
                T0 + WINDOW + timedelta(minutes=2),
                "sequence_reused",
                2,
                "operator:2",
                30 * n + 1,
            )
        )
        # Replay: a byte-identical copy seven hours later.
        submissions.append(
            SubmissionFact(
                ids[first + 72],
                1,
                f"{first + 72:064x}",
                T0,
                T0 + WINDOW,
                T0 + WINDOW + timedelta(hours=7),
                "replayed_report",
                1,
                "operator:1",
                30 * n + 2,
            )
        )
        # Forbidden country: a chip whose transfer conditions allow only Finland, in the US.
        forbidden = ids[first + 80]
        cf = chips[forbidden]
        chips[forbidden] = ChipFact(
            cf.chip_id,
            cf.model,
            cf.peak_ops,
            cf.facility_id,
            cf.country,
            cf.installed_at,
            cf.peak_power_w,
            cf.vendor,
            frozenset({"FI"}),
            cf.operator_id,
        )

    reports: list[ReportFact] = []
    received = [T0 + WINDOW * (w + 1) + timedelta(seconds=3) for w in range(windows)]
    sources = {f: f"operator:{f}" for f in facilities}
    energy_by_facility: dict[tuple[int, int], float] = {}
    for w in range(windows):
        ws, we = T0 + WINDOW * w, T0 + WINDOW * (w + 1)
        for i, chip_id in enumerate(ids):
            if i == silent_chip:
                continue
            u = util_of[i]
            energy = (100.0 + 560.0 * min(u, 1.0)) * seconds
            if plant and i == cluster_start[0] + 33:
                energy = 2.0 * PEAK_W * seconds
            f = facility_of[i]
            claimed = f
            if plant and i == cluster_start[0] + 88:
                claimed = 2 if f != 2 else 1
            key = (f, w)
            energy_by_facility[key] = energy_by_facility.get(key, 0.0) + energy
            reports.append(
                ReportFact(
                    chip_id,
                    w + 1,
                    ws,
                    we,
                    u,
                    energy,
                    tuple(links_of[i]),
                    (w + 1) * n + i,
                    claimed,
                    f"{w * n + i:064x}",
                    received[w],
                    sources[f],
                )
            )
    reports.extend(extra_reports)
    for i in range(0, n, 1000):
        submissions.append(
            SubmissionFact(
                ids[i],
                1,
                f"{i:064x}",
                T0,
                T0 + WINDOW,
                received[0] + timedelta(seconds=40),
                "replayed_report",
                facility_of[i],
                sources[facility_of[i]],
                None,
            )
        )

    landmarks = {
        f: LandmarkFact(f, lat + 1.2, lon + 0.5, f"landmark-{f}")
        for f, (_, lat, lon, _) in enumerate(SITES, start=1)
    }
    meters = {f: MeterFact(f, f) for f in facilities}
    readings: list[MeterReadingFact] = []
    for (f, w), energy in sorted(energy_by_facility.items()):
        fac = facilities[f]
        metered = energy * (1 + HOST_OVERHEAD) * fac.pue + fac.non_it_load_kw * 1000 * seconds
        if f == ghost_facility:  # undeclared chips drawing 12% more than the declared ones
            metered *= 1.12
        readings.append(
            MeterReadingFact(
                f, f, T0 + WINDOW * w, T0 + WINDOW * (w + 1), metered, 40 * n + len(readings)
            )
        )
    rtts = []
    from verifier._common import great_circle_km  # noqa: PLC0415 - only the generator needs it

    for i in range(5, n, 100):
        f = facility_of[i]
        fac = facilities[f]
        for k, lm_id in enumerate(((f - 1) % len(SITES) + 1, f % len(SITES) + 1)):
            lm = landmarks[lm_id]
            d = great_circle_km(lm.latitude, lm.longitude, fac.latitude, fac.longitude)
            rtt = d / 100 * 1.4 + 1.5
            if plant and i == rtt_liar and k == 1:
                rtt = 1.0
            rtts.append(
                RttMeasurementFact(
                    lm_id, ids[i], f"n{i}-{k}", rtt, T0 + timedelta(minutes=5), 50 * n + 2 * i + k
                )
            )
    return Snapshot(
        chips,
        reports,
        clusters,
        facilities,
        installations,
        submissions,
        landmarks,
        rtts,
        meters,
        readings,
        T0,
        T0 + WINDOW * windows,
    )


def _claims(snapshot: Snapshot) -> int:
    return sum(len(r.links) for r in snapshot.reports)


def as_ledger(snapshot: Snapshot) -> Ledger:
    """The fleet's facts as the evidence ledger the registry would map its rows to (every
    record logged), so the one snapshot function is timed over the same data."""
    return Ledger(
        chips=[
            ChipRecord(c.chip_id, c.model, c.peak_ops, c.peak_power_w, c.vendor, None)
            for c in snapshot.chips.values()
        ],
        facilities=[FacilityRecord(f, None) for f in snapshot.facilities.values()],
        # Declared before the reports were logged (as in a registry): every report's source is
        # then its custodian's, as the registry's rows say, and nothing is rewritten.
        installations=[
            InstallationRecord(i.chip_id, i.facility_id, i.start, None)
            for i in snapshot.installations
        ],
        conditions=[
            ConditionRecord(c.chip_id, c.allowed_countries, T0, None)
            for c in snapshot.chips.values()
            if c.allowed_countries is not None
        ],
        clusters=[
            ClusterRecord(c.cluster_id, c.name, c.chip_ids, c.start, c.end, c.facility_id, None)
            for c in snapshot.clusters
        ],
        landmarks=[LandmarkRecord(lm, None) for lm in snapshot.landmarks.values()],
        meters=[MeterRecord(m, None) for m in snapshot.meters.values()],
        reports=snapshot.reports,
        submissions=snapshot.submissions,
        rtts=snapshot.rtts,
        readings=snapshot.meter_readings,
    )


def measure(
    n: int,
    policy_name: str,
    *,
    windows: int,
    plant: bool,
    layout: Layout = BIG,
    repeat: int = 3,
) -> dict[str, object]:
    """Build a fleet of ``n`` chips and time ``engine.run`` over it ``repeat`` times (the
    best run counts: the others only add noise from whatever else the machine does)."""
    policy = load_builtin_policy(policy_name)
    began = time.perf_counter()
    snapshot = build(n, layout=layout, windows=windows, plant=plant)
    built = time.perf_counter() - began
    as_of = T0 + WINDOW * windows
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            began, cpu = time.perf_counter(), time.process_time()
            findings = run(snapshot, policy, as_of)
            walls.append(time.perf_counter() - began)
            cpus.append(time.process_time() - cpu)
        finally:
            gc.enable()
        del findings
    findings = run(snapshot, policy, as_of)
    ledger = as_ledger(snapshot)
    gc.collect()
    gc.disable()
    try:
        cpu = time.process_time()
        cut(ledger, as_of=as_of, since=T0)
        cut_cpu = time.process_time() - cpu
    finally:
        gc.enable()
    return {
        "chips": len(snapshot.chips),
        "link_claims": _claims(snapshot),
        "build_s": round(built, 2),
        "ledger_snapshot_cpu_s": round(cut_cpu, 3),
        "verify_s": round(min(walls), 3),
        "verify_cpu_s": round(min(cpus), 3),
        "verify_s_all": [round(w, 2) for w in walls],
        "findings": len(findings),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--policy", default="default")
    parser.add_argument("--windows", type=int, default=1, help="report windows (default 1)")
    parser.add_argument("--plant", action="store_true", help="add one of every violation")
    parser.add_argument(
        "--layout", choices=["big", "small"], default="big", help="small: 2,048-chip facilities"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size (best counts)")
    parser.add_argument("--json", action="store_true", help="one JSON object per size")
    args = parser.parse_args(argv)
    if not args.json:
        print(
            "| chips | link claims | build facts (s) | verify (s, best) | verify CPU (s) "
            "| all runs (s) | findings |"
        )
        print("|---:|---:|---:|---:|---:|---|---:|")
    for n in args.sizes:
        layout = BIG if args.layout == "big" else SMALL
        row = measure(
            n,
            args.policy,
            windows=args.windows,
            plant=args.plant,
            layout=layout,
            repeat=args.repeat,
        )
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(
                f"| {row['chips']:,} | {row['link_claims']:,} | {row['build_s']:.1f} | "
                f"{row['verify_s']:.2f} | {row['verify_cpu_s']:.2f} | "
                f"{' / '.join(f'{w:.2f}' for w in row['verify_s_all'])} | {row['findings']} |",  # type: ignore[attr-defined]
                flush=True,
            )
        gc.collect()


if __name__ == "__main__":
    main()
