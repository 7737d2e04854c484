"""Recovery after kill -9: time from SIGKILL of every registry process to the first acknowledged
report, with the CPUs busy (issue 9.12: agents retry at once exactly when the registry restarts).

Each round: the registry (``chipreg serve --workers N``, own process group) runs and acknowledges
a batch; then every process of it gets SIGKILL, a new ``chipreg serve`` starts on the same port
and database straight away (as systemd's ``Restart=`` would), and a client posts the next batch
every 50 ms until one is acknowledged. ``--burn N`` keeps N busy-looping processes running
throughout, so start-up competes for the CPUs as on a loaded host.

    python -m loadtests.recovery --db sqlite --rounds 5 --burn 2
    python -m loadtests.recovery --db postgresql --database-url URL --rounds 5 --burn 2

Prints one JSON summary (per-round seconds, median, max, load average, workers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from loadtests.fleet import _chain, create_accounts, enroll, make_chips
from loadtests.server import (
    RegistryProcess,
    add_database_arguments,
    chosen_database_url,
    registry_env,
    spawn_serve,
    start_registry,
)

__all__ = ["main", "measure"]

_BURN = "while True:\n    pass\n"


def _post_until_acknowledged(url: str, token: str, body: bytes, deadline: float) -> float:
    """Post ``body`` every 50 ms until the registry acknowledges every report; return when."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while time.monotonic() < deadline:
        try:
            response = httpx.post(
                f"{url}/v1/reports/batch", content=body, headers=headers, timeout=5
            )
            if response.status_code == 200:
                results = response.json()["results"]
                if all(
                    r["status"] == "accepted" or r.get("code") == "replayed_report" for r in results
                ):
                    return time.monotonic()
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    msg = "no acknowledgement before the deadline"
    raise RuntimeError(msg)


def measure(
    database_url: str, workdir: Path, *, rounds: int, workers: int, chips: int, timeout: float
) -> list[float]:
    """Seconds from SIGKILL to the first acknowledged report, per round."""
    server: RegistryProcess = start_registry(database_url, workdir, workers=workers, timeout=120)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            accounts = create_accounts(http, server.admin_token)
            fleet = make_chips(chips, seed="recovery")
            enroll(http, accounts, fleet, threads=4)
        chains = [list(_chain(chip, rounds + 1)) for chip in fleet]
        batches = [
            b'{"reports":[' + b",".join(chain[i] for chain in chains) + b"]}"
            for i in range(rounds + 1)
        ]
        token = accounts.operator_token
        _post_until_acknowledged(server.url, token, batches[0], time.monotonic() + timeout)
        port = int(server.url.rsplit(":", 1)[1])
        env = registry_env(database_url, workdir)
        seconds = []
        for i in range(1, rounds + 1):
            killed = time.monotonic()
            server.kill_hard()
            server.process = spawn_serve(env, port, workers, server.log_path)
            acked = _post_until_acknowledged(server.url, token, batches[i], killed + timeout)
            seconds.append(round(acked - killed, 3))
            print(f"round {i}: {seconds[-1]:.2f} s", file=sys.stderr, flush=True)
            time.sleep(1.0)  # let the new workers settle before the next kill
        return seconds
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.recovery", description=__doc__)
    add_database_arguments(p)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--chips", type=int, default=16, help="reports per batch")
    p.add_argument("--burn", type=int, default=0, help="busy-looping processes during the run")
    p.add_argument("--timeout", type=float, default=180.0, help="per round, seconds")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.workers < 1 or args.chips < 1 or args.burn < 0:
        p.error("--rounds, --workers and --chips must be positive, --burn not negative")
    burners = [
        subprocess.Popen([sys.executable, "-c", _BURN])  # noqa: S603 (fixed argv)
        for _ in range(args.burn)
    ]
    try:
        with tempfile.TemporaryDirectory(prefix="chipreg-recovery-") as tmp:
            workdir = Path(tmp)
            url = chosen_database_url(p, args, workdir)
            load_before = os.getloadavg()
            seconds = measure(
                url,
                workdir,
                rounds=args.rounds,
                workers=args.workers,
                chips=args.chips,
                timeout=args.timeout,
            )
            load_after = os.getloadavg()
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    print(
        json.dumps(
            {
                "db": args.db,
                "workers": args.workers,
                "burn_processes": args.burn,
                "cpus": os.cpu_count(),
                "loadavg_1m_before": round(load_before[0], 2),
                "loadavg_1m_after": round(load_after[0], 2),
                "seconds": seconds,
                "median_s": statistics.median(seconds),
                "max_s": max(seconds),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
