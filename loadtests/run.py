"""Run one ingest load test end to end and check that no acknowledged report was lost.

Starts ``chipreg serve`` (``--workers`` processes) on a fresh SQLite file or a given PostgreSQL
database, enrolls a deterministic fleet, pre-signs its reports, measures the raw single-core
verification rate of the registry's signature check on those reports, runs locust headless
against 127.0.0.1, then checks the database against every acknowledgement
(:mod:`loadtests.losscheck`) and prints a summary with the end-to-end rate and its ratio to the
raw rate. Exits 1 if any report was lost or duplicated, 2 if the load run itself failed.
``--then-at 0.8`` runs it a second time, from an empty database, at 80% of the first run's mean
rate (latency at a sustainable load), so one command gives both figures.

    python -m loadtests.run --db sqlite --chips 2000 --reports 20 --users 4 --duration 40
    scripts/with-postgres.sh python -m loadtests.run --db postgresql --reset --then-at 0.8 ...
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from nacl.bindings import crypto_sign_open

from attestation.dsse import Envelope, pae
from attestation.keys import PublicKey
from attestation.report import open_envelope
from loadtests import fleet, losscheck
from loadtests.server import RegistryProcess, reset_postgres, start_registry

__all__ = ["main", "run"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def raw_verify_rate(
    fleet_dir: Path, chips: Sequence[fleet.LoadChip], seconds: float = 3.0
) -> dict[str, float | str]:
    """Single-core verifications/s of the registry's check on this run's pre-signed reports.

    The same call ingest makes (:meth:`PublicKey.verify`: the strict pre-checks, then
    libsodium), with key objects built beforehand as ingest caches them; and libsodium alone.
    """
    msgs: list[tuple[PublicKey, bytes, bytes]] = []
    keys = {c.chip_id: PublicKey(c.key.public_key.raw) for c in chips}
    for path in sorted(fleet_dir.glob("slot-*.jsonl")):
        for line in path.read_bytes().splitlines()[:20]:
            for obj in json.loads(line)["reports"]:
                env = Envelope.from_dict(obj)
                opened = open_envelope(env)
                msgs.append(
                    (
                        keys[opened.claimed.chip_id],
                        env.signatures[0].sig,
                        pae(env.payload_type, env.payload),
                    )
                )
        if len(msgs) >= 4000:
            break
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for key, sig, msg in msgs:
            key.verify(sig, msg)
        done += len(msgs)
    registry_rate = done / (time.perf_counter() - started)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds / 2:
        for key, sig, msg in msgs:
            crypto_sign_open(sig + msg, key.raw)
        done += len(msgs)
    return {
        "library": "libsodium (PyNaCl) with strict pre-checks (attestation.ed25519)",
        "registry_verify_per_s": round(registry_rate),
        "libsodium_alone_per_s": round(done / (time.perf_counter() - started)),
    }


def _scrape_accepted(url: str) -> float | None:
    """``chipreg_reports_accepted_total`` from /metrics (summed over worker processes)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("chipreg_reports_accepted_total "):
            return float(line.split()[1])
    return None


# The registry's own histograms the summary reports (count and mean per label set).
_HISTOGRAMS = (
    "chipreg_group_commit_reports",
    "chipreg_db_commit_seconds",
    "chipreg_log_lock_wait_seconds",
    "chipreg_integrator_round_seconds",
)


def _scrape_histograms(url: str) -> dict[str, dict[str, float]]:
    """Count and mean of the :data:`_HISTOGRAMS` from /metrics, per label set."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    try:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    except httpx.HTTPError:
        return {}
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in _HISTOGRAMS:
            continue
        for sample in family.samples:
            if not sample.name.endswith(("_sum", "_count")):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            key = f"{family.name}{{{labels}}}" if labels else family.name
            out.setdefault(key, {})[sample.name.rsplit("_", 1)[1]] = sample.value
    return {
        key: {"count": v.get("count", 0.0), "mean": round(v["sum"] / v["count"], 6)}
        for key, v in out.items()
        if v.get("count")
    }


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _latency(csv_prefix: Path, name: str) -> dict[str, float]:
    path = Path(f"{csv_prefix}_stats.csv")
    if not path.is_file():
        return {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == name:
                return {
                    "requests": float(row["Request Count"]),
                    "failures": float(row["Failure Count"]),
                    "p50_ms": float(row["50%"]),
                    "p99_ms": float(row["99%"]),
                    "max_ms": float(row["Max Response Time"]),
                }
    return {}


class CheckpointWatch:
    """Polls ``/v1/log/checkpoint`` every ``period_s`` on its own thread and records when each
    new size was first seen (wall clock, as the acks are): the ack-to-checkpoint latency of
    :func:`losscheck.checkpoint_latency`, to within the period."""

    def __init__(self, url: str, period_s: float = 0.02) -> None:
        self.url = url
        self.period_s = period_s
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint-watch", daemon=True)

    def __enter__(self) -> CheckpointWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        last = -1
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self._stop.wait(self.period_s):
                try:
                    size = int(http.get("/v1/log/checkpoint").text.split("\n")[1])
                except (httpx.HTTPError, IndexError, ValueError):
                    continue
                if size > last:
                    self.seen.append((time.time(), size))
                    last = size


def _wait_checkpoint(url: str, size: int, timeout_s: float = 15.0) -> bool:
    """Wait until the published checkpoint covers the first ``size`` entries; True if it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            note = httpx.get(f"{url}/v1/log/checkpoint", timeout=5).text
            if int(note.split("\n")[1]) >= size:
                return True
        except (httpx.HTTPError, IndexError, ValueError):
            pass
        time.sleep(0.1)
    return False


def _peak_rate(acks: Sequence[losscheck.Ack], window: float = 5.0) -> float:
    """The highest accepted reports/s over any ``window`` seconds (whole seconds, sliding)."""
    if not acks:
        return 0.0
    per_second = Counter(int(a.at) for a in acks)
    first, last = min(per_second), max(per_second)
    span = max(1, round(window))
    best = max(
        sum(per_second.get(t, 0) for t in range(start, start + span))
        for start in range(first, max(first, last - span + 1) + 1)
    )
    return best / span


def _profile(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).is_file():
        print("py-spy not found; no profile taken", file=sys.stderr)
        return None
    cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "50"]
    cmd += ["--subprocesses"]
    cmd += ["--format", "raw", "--output", str(out), "--nonblocking"]
    # Our own argv: the py-spy next to this interpreter, a pid and a path we chose.
    return subprocess.Popen(  # noqa: S603
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_profile(path: Path, top: int = 15) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        # Inclusive time per function, not per line: strip the line number.
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[frame] += n
    if not total:
        return "(no samples)"
    lines = [f"{total} samples; top self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("top inclusive time (chipreg code):")
    ours = [
        (f, n)
        for f, n in inclusive.most_common()
        if any(p in f for p in ("registry/", "attestation/"))
    ]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours[:top]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """The load run ``args`` asks for; with ``--then-at``, a second one at that share of the first.

    The second run starts from nothing again (a fresh SQLite file, or the PostgreSQL schema
    dropped), enrolls the same fleet and offers ``then_at`` x the first run's mean rate at a
    constant pace: the "p99 at 80% of the maximum" of issue 15 from the same command. Its
    summary is the first one's ``then_at`` entry. The exit status is the first failure's.
    """
    if not 0.0 <= args.then_at < 1.0:
        print("--then-at is a share of the maximum rate: 0 < FRACTION < 1")
        return 2
    if args.then_at and args.target_rate:
        print("--then-at measures the maximum first: leave --target-rate out")
        return 2
    if args.then_at and args.db == "postgresql" and not args.reset:
        print("--then-at on PostgreSQL drops the schema between the runs: add --reset")
        return 2
    code, summary = _run_once(args)
    if not args.then_at or code != 0 or summary is None:
        _write(args, summary)
        return code
    second = argparse.Namespace(**{**vars(args), "then_at": 0.0, "json_out": None})
    second.target_rate = round(args.then_at * summary["reports_per_s"], 1)
    print(
        f"\nthen at {args.then_at:.0%} of {summary['reports_per_s']:,}/s: {second.target_rate:,}/s"
    )
    code, at = _run_once(second)
    summary["then_at"] = {"fraction": args.then_at, "target_rate": second.target_rate, **(at or {})}
    _write(args, summary)
    if at is not None:
        print(
            f"max {summary['reports_per_s']:,}/s (ratio {summary['ratio_to_raw_verify']}), "
            f"batch p50/p99 {summary['batch_latency_ms']}; "
            f"at {args.then_at:.0%}: {at['reports_per_s']:,}/s, "
            f"batch p50/p99 {at['batch_latency_ms']}"
        )
    return code


def _write(args: argparse.Namespace, summary: dict[str, Any] | None) -> None:
    if args.json_out and summary is not None:
        Path(args.json_out).write_text(json.dumps(summary, indent=2))


def _run_once(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """One load run from an empty database: (exit status, summary; None if it never loaded)."""
    workdir = Path(tempfile.mkdtemp(prefix="chipreg-load-", dir=args.workdir))
    if args.db == "sqlite":
        database_url = f"sqlite:///{workdir / 'registry.sqlite3'}"
    else:
        database_url = args.database_url or os.environ.get("CHIPREG_TEST_POSTGRES_URL", "")
        if not database_url:
            print("--db postgresql needs --database-url or CHIPREG_TEST_POSTGRES_URL")
            return 2, None
        if args.reset:
            reset_postgres(database_url)
    out = workdir / "out"
    fleet_dir = workdir / "fleet"
    out.mkdir()
    users = args.users
    slots = args.slots or users

    server = start_registry(database_url, workdir, workers=args.workers)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            size = int(http.get("/v1/log/checkpoint").text.splitlines()[1])
            if size:
                print(f"the log already has {size} entries; use an empty database (--reset)")
                return 2, None
            t0 = time.monotonic()
            chips = fleet.make_chips(args.chips, args.seed)
            accounts = fleet.create_accounts(http, server.admin_token, args.seed)
            fleet.enroll(http, accounts, chips)
            t1 = time.monotonic()
        manifest = fleet.write_slots(
            chips,
            reports_per_chip=args.reports,
            slots=slots,
            batch_size=args.batch_size,
            out=fleet_dir,
            operator_token=accounts.operator_token,
        )
        t2 = time.monotonic()
        print(
            f"fleet: enrolled {args.chips} chips in {t1 - t0:.1f} s "
            f"({args.chips / max(t1 - t0, 1e-9):.0f} chips/s); signed {manifest['reports']} "
            f"reports into {manifest['batches']} batches of {args.batch_size} in {t2 - t1:.1f} s",
            flush=True,
        )
        raw = raw_verify_rate(fleet_dir, chips)
        print(
            f"raw verify, one core: {raw['registry_verify_per_s']:,}/s "
            f"(libsodium alone {raw['libsodium_alone_per_s']:,}/s)",
            flush=True,
        )
        return _load(args, server, manifest, fleet_dir, out, users, raw)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


def _load(  # noqa: PLR0917 (private helper split off run(); all arguments are its state)
    args: argparse.Namespace,
    server: RegistryProcess,
    manifest: dict[str, object],
    fleet_dir: Path,
    out: Path,
    users: int,
    raw: dict[str, float | str],
) -> tuple[int, dict[str, Any]]:
    user_rate = args.target_rate / args.batch_size / users if args.target_rate else 0.0
    env = {
        **os.environ,
        "LOADTEST_FLEET": str(fleet_dir),
        "LOADTEST_OUT": str(out),
        "LOADTEST_BATCH_SIZE": str(args.batch_size),
        "LOADTEST_USERS": str(users),
        "LOADTEST_RAMP_S": str(args.ramp),
        "LOADTEST_HOLD_S": str(max(args.duration - args.ramp, 1)),
        "LOADTEST_USER_RATE": str(user_rate),
    }
    csv_prefix = out / "locust"
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    cmd += ["--csv", str(csv_prefix), "--host", server.url, "--only-summary"]
    cmd += ["--loglevel", "WARNING", "--stop-timeout", "30"]
    if args.processes:
        cmd += ["--processes", str(args.processes)]
    cpu_children0 = _children_cpu()
    cpu_server0 = server.cpu_seconds()
    profiler = None
    if args.profile:
        profiler = _profile(server.pid, max(int(args.duration - args.ramp), 1), out / "py-spy.txt")
    watch = CheckpointWatch(server.url).__enter__()
    started = time.monotonic()
    # The argv is built here from parsed numbers and our own paths, not from a shell string.
    locust = subprocess.run(  # noqa: S603
        cmd, env=env, timeout=args.duration + 120, capture_output=True, check=False
    )
    wall = time.monotonic() - started
    loadgen_cpu = _children_cpu() - cpu_children0
    server_cpu = server.cpu_seconds() - cpu_server0
    if profiler is not None:
        # Waited only now, so py-spy's own CPU is not in the load generator's figure above.
        profiler.wait(timeout=60)
    if args.verbose or locust.returncode not in (0, 1):
        sys.stdout.write(locust.stdout.decode(errors="replace")[-4000:])
        sys.stdout.write(locust.stderr.decode(errors="replace")[-4000:])
    metrics_accepted = _scrape_accepted(server.url)
    histograms = _scrape_histograms(server.url)
    acks = losscheck.read_acks(out)
    # Every acknowledged report must reach a signed checkpoint (the integrator's 1 s budget):
    # wait for the one that covers the last before stopping the registry.
    covered = _wait_checkpoint(server.url, 1 + max((a.log_index for a in acks), default=-1))
    time.sleep(0.1)
    watch.__exit__()
    server.stop()

    stats = [json.loads(p.read_text()) for p in out.glob("stats-*.json")]
    accepted = sum(s["accepted"] for s in stats)
    rejected = sum(s["rejected"] for s in stats)
    failed = sum(s["failed_requests"] for s in stats)
    throttled = sum(s.get("throttled", 0) for s in stats)
    codes: Counter[str] = Counter()
    for s in stats:
        codes.update(s["codes"])
    firsts = [s["first_send"] for s in stats if s["first_send"]]
    lasts = [s["last_ack"] for s in stats if s["last_ack"]]
    span = (max(lasts) - min(firsts)) if firsts and lasts else 0.0

    loss = losscheck.check(server.database_url, acks)
    to_checkpoint = losscheck.checkpoint_latency(watch.seen, acks)
    latency = _latency(csv_prefix, f"/v1/reports/batch [{args.batch_size}]")
    rate = accepted / span if span else 0.0
    raw_rate = float(raw["registry_verify_per_s"])
    summary: dict[str, Any] = {
        "db": args.db,
        "run_dir": str(out.parent) if args.keep else None,
        "chips": args.chips,
        "batch_size": args.batch_size,
        "users": users,
        "processes": args.processes or 1,
        "target_rate": args.target_rate or None,
        "accepted": accepted,
        "rejected": rejected,
        "rejection_codes": dict(codes),
        "failed_requests": failed,
        "throttled_requests_429": throttled,
        "workers": args.workers,
        "reports_per_s": round(rate, 1),
        "raw_verify": raw,
        "ratio_to_raw_verify": round(rate / raw_rate, 3) if raw_rate else None,
        "peak_5s_reports_per_s": round(_peak_rate(acks), 1),
        "best_10s_reports_per_s": round(_peak_rate(acks, 10.0), 1),
        "best_10s_ratio_to_raw_verify": (
            round(_peak_rate(acks, 10.0) / raw_rate, 3) if raw_rate else None
        ),
        "send_span_s": round(span, 1),
        "locust_wall_s": round(wall, 1),
        "batch_latency_ms": latency,
        "loadgen_cpu_s": round(loadgen_cpu, 1),
        "registry_cpu_s": round(server_cpu, 1),
        "loadgen_cpu_us_per_report": round(1e6 * loadgen_cpu / accepted, 1) if accepted else None,
        "registry_cpu_us_per_report": round(1e6 * server_cpu / accepted, 1) if accepted else None,
        # Cores used over locust's wall time (CPU seconds per second).
        "registry_cores_used": round(server_cpu / wall, 2) if wall else None,
        "loadgen_cores_used": round(loadgen_cpu / wall, 2) if wall else None,
        "ack_to_checkpoint_ms": to_checkpoint,
        "all_acks_in_a_checkpoint": covered,
        "metrics_accepted_total": metrics_accepted,
        "registry_histograms": histograms,
        "loss_check": {
            "ok": loss.ok,
            "acknowledged": loss.acknowledged,
            "stored_reports": loss.stored_reports,
            "log_size": loss.log_size,
            "integrated_size": loss.integrated_size,
            "stored_not_acknowledged": loss.stored_not_acknowledged,
            "problems": loss.problems,
        },
    }
    print(json.dumps(summary, indent=2))
    if profiler is not None and (out / "py-spy.txt").is_file():
        print(summarize_profile(out / "py-spy.txt"))
    if not loss.ok or accepted != loss.acknowledged:
        print("LOSS CHECK FAILED", file=sys.stderr)
        return 1, summary
    if accepted == 0 or locust.returncode not in (0, 1):
        print(f"load run failed (locust exit {locust.returncode})", file=sys.stderr)
        return 2, summary
    print(f"loss check passed: {accepted} acknowledged reports, all stored and logged once")
    return 0, summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--database-url", help="PostgreSQL URL (default: CHIPREG_TEST_POSTGRES_URL)")
    p.add_argument("--reset", action="store_true", help="drop the PostgreSQL schema first")
    p.add_argument("--chips", type=int, default=1000)
    p.add_argument("--reports", type=int, default=20, help="pre-signed reports per chip")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--users", type=int, default=4, help="peak locust users")
    p.add_argument("--slots", type=int, default=0, help="chip slices (default: --users)")
    p.add_argument("--processes", type=int, default=0, help="locust --processes")
    p.add_argument("--workers", type=int, default=2, help="chipreg serve --workers")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load incl. ramp")
    p.add_argument("--ramp", type=float, default=5.0, help="ramp-up seconds")
    p.add_argument(
        "--target-rate",
        type=float,
        default=0.0,
        help="reports/s to offer in total (constant throughput); 0 = as fast as possible",
    )
    p.add_argument(
        "--then-at",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="after the maximum, run again from an empty database at this share of its mean "
        "rate (e.g. 0.8; PostgreSQL needs --reset); its summary is the JSON's then_at",
    )
    p.add_argument("--seed", default="loadtest")
    p.add_argument("--profile", action="store_true", help="py-spy the registry during the hold")
    p.add_argument("--workdir", help="parent of the temporary run directory")
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    p.add_argument("--json-out", help="also write the summary to this file")
    p.add_argument("--verbose", action="store_true", help="show locust's output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
