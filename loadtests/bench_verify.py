"""How close does ingest get to the raw signature-verification rate? One run, one number each.

1. raw: single-core Ed25519 verifications/s of the registry's check
   (:meth:`attestation.keys.PublicKey.verify`: the strict rule's pre-checks, then libsodium)
   over pre-built DSSE PAE messages, and OpenSSL's (``cryptography``) rate on the same messages
   for reference;
2. end to end: accepted reports/s through a ``chipreg serve --workers 2`` subprocess on SQLite,
   posting pre-signed batches of 64 and 256 over HTTP from a few client threads;
3. the ratio end-to-end / raw. (``python -m loadtests.run`` prints the same ratio for a locust
   run.)

    python -m loadtests.bench_verify [--verifications 20000] [--reports 8192]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from attestation.dsse import Envelope, pae
from attestation.keys import PublicKey
from loadtests import fleet
from loadtests.server import start_registry

__all__ = ["main"]


def _messages(count: int, chips: int = 200) -> list[tuple[bytes, bytes, bytes]]:
    """(public key, signature, PAE message) for ``count`` real signed reports."""
    out = []
    per_chip = -(-count // chips)
    for chip in fleet.make_chips(chips, "bench"):
        raw = chip.key.public_key.raw
        for body in fleet._chain(chip, per_chip):
            env = Envelope.from_json(body)
            out.append((raw, env.signatures[0].sig, pae(env.payload_type, env.payload)))
    return out[:count]


def raw_rates(count: int) -> dict[str, float]:
    msgs = _messages(count)
    # Key objects are built once, as the registry's ingest caches them per chip key.
    keys = {raw: PublicKey(raw) for raw, _, _ in msgs}
    t = time.perf_counter()
    for raw, sig, msg in msgs:
        keys[raw].verify(sig, msg)
    rates = {"registry_verify_per_s": count / (time.perf_counter() - t)}
    okeys = {raw: key.to_cryptography() for raw, key in keys.items()}
    t = time.perf_counter()
    for raw, sig, msg in msgs:
        okeys[raw].verify(sig, msg)
    rates["openssl_verify_per_s"] = count / (time.perf_counter() - t)
    return rates


def end_to_end(batch_size: int, reports: int, threads: int, workdir: Path) -> dict[str, float]:
    """Accepted reports/s of a fresh SQLite registry for pre-signed batches of ``batch_size``."""
    server = start_registry(f"sqlite:///{workdir / 'registry.sqlite3'}", workdir, workers=2)
    try:
        per_chip = 16
        chips = fleet.make_chips(max(reports // per_chip, threads), f"bench-{batch_size}")
        with httpx.Client(base_url=server.url, timeout=120) as http:
            accounts = fleet.create_accounts(http, server.admin_token, f"bench-{batch_size}")
            fleet.enroll(http, accounts, chips)
        fleet_dir = workdir / "fleet"
        fleet.write_slots(
            chips,
            reports_per_chip=per_chip,
            slots=threads,
            batch_size=batch_size,
            out=fleet_dir,
            operator_token=accounts.operator_token,
        )
        headers = {
            "Authorization": f"Bearer {accounts.operator_token}",
            "Content-Type": "application/json",
        }

        def send(slot: int) -> int:
            accepted = 0
            bodies = fleet.slot_path(fleet_dir, slot).read_bytes().splitlines()
            with httpx.Client(base_url=server.url, timeout=120, headers=headers) as http:
                for body in bodies:
                    r = http.post("/v1/reports/batch", content=body)
                    r.raise_for_status()
                    accepted += int(r.json()["accepted"])
            return accepted

        t = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            accepted = sum(pool.map(send, range(threads)))
        elapsed = time.perf_counter() - t
    finally:
        server.stop()
    return {"batch_size": batch_size, "accepted": accepted, "reports_per_s": accepted / elapsed}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_verify", description=__doc__)
    p.add_argument("--verifications", type=int, default=20_000)
    p.add_argument("--reports", type=int, default=8192, help="reports per batch size")
    p.add_argument("--threads", type=int, default=2, help="concurrent HTTP clients")
    p.add_argument("--batch-sizes", default="64,256")
    args = p.parse_args(argv)

    raw = raw_rates(args.verifications)
    print(
        f"raw Ed25519 verify, one core, registry (libsodium): {raw['registry_verify_per_s']:,.0f}/s"
    )
    print(
        f"raw Ed25519 verify, one core, OpenSSL (reference): {raw['openssl_verify_per_s']:,.0f}/s"
    )
    results: dict[str, object] = {"raw": raw, "end_to_end": []}
    for size in (int(s) for s in args.batch_sizes.split(",")):
        workdir = Path(tempfile.mkdtemp(prefix="chipreg-bench-"))
        try:
            e2e = end_to_end(size, args.reports, args.threads, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        e2e["ratio_to_raw"] = e2e["reports_per_s"] / raw["registry_verify_per_s"]
        print(
            f"end to end, SQLite, batches of {size}: {e2e['reports_per_s']:,.0f} reports/s "
            f"({e2e['accepted']} accepted) = {100 * e2e['ratio_to_raw']:.1f}% of raw verify"
        )
        results["end_to_end"].append(e2e)  # type: ignore[attr-defined]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
