"""The trace samples: how they are cut from their public sources, and the synthetic one.

Three subcommands (``python -m loadtests.traces.make_samples ...``); formats and licences in
``tests/data/traces/README.md``:

``philly JOBS_JSON [OUT_DIR]``
    Cut the committed Microsoft Philly sample (CC BY 4.0) from ``analysis/jobs.json`` of
    github.com/marwage/philly-traces into ``OUT_DIR`` (default ``tests/data/traces``).
``openb [POD_CSV]``
    Cut the Alibaba OpenB slice into ``loadtests/traces/cache/`` (ignored by git: the trace
    comes without a licence that allows redistributing it, so it is not committed), from a
    local copy of ``openb_pod_list_default.csv`` or, without one, downloaded from its pinned
    commit (:data:`OPENB_URL`). ``python -m loadtests.calibrate fleets`` runs the ``openb``
    fleet when the slice is there.
``openb-synthetic [OUT_DIR]``
    Write the committed synthetic schedule shaped like the OpenB slice (no row of the trace:
    arrivals, GPU counts, GPU shares and durations drawn from the few statistics in
    the ``OPENB_*`` statistics, measured on the slice), deterministic.

Every sample has one format, one row per run of a job on its GPUs (a retried job has one row
per attempt): ``job,gpus,start_s,end_s,gpu_share``, times in seconds from the slice start,
clipped to the slice, ``gpu_share`` the fraction of each GPU the job holds (GPU sharing; 1
otherwise).
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

PHILLY_START = datetime(2017, 10, 19)
OPENB_START_S = 125 * 86400
DAYS = 7

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLES = ROOT / "tests" / "data" / "traces"
CACHE = Path(__file__).resolve().parent / "cache"
OPENB_FILE = "openb_day125_7d.csv"
OPENB_SYNTHETIC_FILE = "openb_synthetic_7d.csv"
OPENB_URL = (
    "https://raw.githubusercontent.com/alibaba/clusterdata/"
    "50a91c7c74abe3b658188dc78ac1dd302970d40c/cluster-trace-gpu-v2023/csv/"
    "openb_pod_list_default.csv"
)

# Statistics of the OpenB slice (GPU pods running in days 125-132 of the trace, as cut by
# ``openb``): 1,195 runs, 35 already running at the slice start (34 of 1 GPU, one of 4; 60% of
# them still running at its end), 1,160 arrivals, GPU counts and the GPU shares of 1-GPU pods
# by frequency, durations of arriving pods log-normal (median 957 s, sigma of the log 1.67).
OPENB_ARRIVALS = 1160
OPENB_RUNNING_AT_START = 35
OPENB_RUNNING_AT_START_KEPT = 0.6
OPENB_GPUS = {1: 1133, 2: 5, 4: 4, 8: 18}
OPENB_SHARES = {1.0: 658, 0.81: 214, 0.32: 91, 0.47: 63, 0.46: 41, 0.65: 30, 0.22: 14}
OPENB_LOG_DURATION_MU = 6.86
OPENB_LOG_DURATION_SIGMA = 1.67


def _write(path: Path, rows: list[tuple[str, int, int, int, float]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["job", "gpus", "start_s", "end_s", "gpu_share"])
        for row in sorted(rows, key=lambda r: (r[2], r[0])):
            writer.writerow(row)


def philly(source: Path) -> list[tuple[str, int, int, int, float]]:
    """Attempts of multi-GPU jobs overlapping 7 days from 2017-10-19 (Microsoft Philly)."""
    end = PHILLY_START + timedelta(days=DAYS)
    rows = []
    for job in json.loads(source.read_text()):
        for attempt in job["attempts"]:
            if not attempt.get("start_time") or not attempt.get("end_time"):
                continue
            a = datetime.strptime(attempt["start_time"], "%Y-%m-%d %H:%M:%S")
            b = datetime.strptime(attempt["end_time"], "%Y-%m-%d %H:%M:%S")
            if a < end and b > PHILLY_START:
                a, b = max(a, PHILLY_START), min(b, end)
                start_s = int((a - PHILLY_START).total_seconds())
                end_s = int((b - PHILLY_START).total_seconds())
                rows.append((job["id"], int(job["num_gpus"]), start_s, end_s, 1.0))
    return rows


def openb(source: Path) -> list[tuple[str, int, int, int, float]]:
    """GPU pods running in 7 days from day 125 of the Alibaba OpenB trace (2023)."""
    end = OPENB_START_S + DAYS * 86400
    rows = []
    with source.open() as f:
        for pod in csv.DictReader(f):
            gpus = int(pod["num_gpu"])
            if gpus == 0 or not pod["scheduled_time"] or not pod["deletion_time"]:
                continue
            a, b = int(pod["scheduled_time"]), int(pod["deletion_time"])
            if a < end and b > OPENB_START_S:
                a, b = max(a, OPENB_START_S), min(b, end)
                share = int(pod["gpu_milli"]) / 1000 if gpus == 1 else 1.0
                rows.append((pod["name"], gpus, a - OPENB_START_S, b - OPENB_START_S, share))
    return rows


def openb_synthetic(seed: int = 2023) -> list[tuple[str, int, int, int, float]]:
    """A schedule shaped like the OpenB slice, drawn from the ``OPENB_*`` statistics alone."""
    rng = random.Random(f"{seed}:openb-synthetic")
    span = DAYS * 86400
    gpus, gpu_weights = list(OPENB_GPUS), list(OPENB_GPUS.values())
    shares, share_weights = list(OPENB_SHARES), list(OPENB_SHARES.values())

    def duration() -> int:
        return max(1, round(math.exp(rng.gauss(OPENB_LOG_DURATION_MU, OPENB_LOG_DURATION_SIGMA))))

    def share(n: int) -> float:
        return rng.choices(shares, share_weights)[0] if n == 1 else 1.0

    rows: list[tuple[str, int, int, int, float]] = []
    for i in range(OPENB_RUNNING_AT_START):
        n = 4 if i == 0 else 1
        end = span if rng.random() < OPENB_RUNNING_AT_START_KEPT else min(span, duration())
        rows.append((f"synth-{len(rows):04d}", n, 0, end, share(n)))
    for _ in range(OPENB_ARRIVALS):
        start = rng.randrange(1, span)
        n = rng.choices(gpus, gpu_weights)[0]
        rows.append((f"synth-{len(rows):04d}", n, start, min(span, start + duration()), share(n)))
    return rows


def _openb_source(argv: list[str]) -> Path:
    if argv:
        return Path(argv[0])
    CACHE.mkdir(exist_ok=True)
    target = CACHE / "openb_pod_list_default.csv"
    if not target.exists():
        with urllib.request.urlopen(OPENB_URL, timeout=60) as response:
            target.write_bytes(response.read())
    return target


def main(argv: list[str]) -> int:
    usage = (
        "usage: python -m loadtests.traces.make_samples "
        "{philly JOBS_JSON [OUT_DIR] | openb [POD_CSV] | openb-synthetic [OUT_DIR]}"
    )
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "philly" and rest:
        out = Path(rest[1]) if len(rest) > 1 else SAMPLES
        _write(out / "philly_2017-10-19_7d.csv", philly(Path(rest[0])))
    elif command == "openb":
        CACHE.mkdir(exist_ok=True)
        _write(CACHE / OPENB_FILE, openb(_openb_source(rest)))
        print(CACHE / OPENB_FILE)
    elif command == "openb-synthetic":
        out = Path(rest[0]) if rest else SAMPLES
        _write(out / OPENB_SYNTHETIC_FILE, openb_synthetic())
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
