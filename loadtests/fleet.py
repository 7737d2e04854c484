"""A deterministic fleet of chips for load tests: enrollment over the API and pre-signed batches.

Everything follows from a seed, so two runs with the same arguments send the same bytes. The
reports are signed here, before the load starts, and written as ready-to-POST batch bodies:
one JSON-lines file per load-generator slot, each slot owning a disjoint set of chips so that
every slot's hash chains stay valid whatever the other slots do.

Usage (against a running registry with an admin token)::

    python -m loadtests.fleet --url http://127.0.0.1:8080 --admin-token TOKEN \\
        --chips 1000 --reports 10 --slots 4 --batch-size 64 --out /tmp/fleet
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from attestation.certs import create_vendor_root, issue_chip_certificate
from attestation.keys import PrivateKey
from attestation.logentries import sign_installation_declaration
from attestation.report import GENESIS_DIGEST, UsageReport, report_digest, sign_report

__all__ = [
    "FleetAccounts",
    "LoadChip",
    "create_accounts",
    "enroll",
    "make_chips",
    "slot_path",
    "write_slots",
]

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
VALID_FROM = datetime(2025, 1, 1, tzinfo=UTC)
VALID_TO = datetime(2036, 1, 1, tzinfo=UTC)
INSTALLED_AT = datetime(2026, 2, 1, tzinfo=UTC)
MANIFEST = "manifest.json"


def _key(seed: str, label: str) -> PrivateKey:
    return PrivateKey.from_seed(hashlib.sha256(f"{seed}:{label}".encode()).digest())


@dataclass(frozen=True)
class LoadChip:
    """One simulated chip: its id and identity key, derived from the fleet seed."""

    chip_id: str
    key: PrivateKey


def make_chips(count: int, seed: str = "loadtest") -> list[LoadChip]:
    """``count`` chips with keys derived from ``seed``; chip ids are ``LT-<seed>-<n>``."""
    tag = hashlib.sha256(seed.encode()).hexdigest()[:8]
    return [LoadChip(f"LT-{tag}-{n:07d}", _key(seed, f"chip:{n}")) for n in range(count)]


@dataclass(frozen=True)
class FleetAccounts:
    """The registry ids and tokens a load test needs."""

    vendor_id: int
    vendor_token: str
    operator_id: int
    operator_token: str
    facility_id: int
    root_pem: bytes
    root_key: PrivateKey
    operator_key: PrivateKey


def _ok(response: httpx.Response, status: int = 201) -> dict[str, object]:
    if response.status_code != status:
        msg = f"{response.request.method} {response.request.url.path}: {response.status_code} "
        raise RuntimeError(msg + response.text[:500])
    doc: dict[str, object] = response.json()
    return doc


def _id(doc: dict[str, object]) -> int:
    value = doc["id"]
    assert isinstance(value, int)
    return value


def create_accounts(http: httpx.Client, admin_token: str, seed: str = "loadtest") -> FleetAccounts:
    """One vendor, one operator with one facility, and a token for each (admin calls)."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    root_key = _key(seed, "vendor")
    vendor_name = f"LoadVendor {seed}"
    root_pem = create_vendor_root(vendor_name, root_key, not_before=VALID_FROM, not_after=VALID_TO)
    vendor = _ok(
        http.post(
            "/v1/vendors",
            json={"name": vendor_name, "root_certificate_pem": root_pem.decode()},
            headers=admin,
        )
    )
    vendor_token = _ok(
        http.post(
            "/v1/tokens",
            json={"name": "load vendor", "role": "vendor", "vendor_id": _id(vendor)},
            headers=admin,
        )
    )["token"]
    operator = _ok(
        http.post(
            "/v1/operators",
            json={
                "name": f"LoadOperator {seed}",
                "country": "US",
                "public_key": _key(seed, "operator").public_key.to_b64(),
            },
            headers=admin,
        )
    )
    operator_token = _ok(
        http.post(
            "/v1/tokens",
            json={"name": "load agents", "role": "operator", "operator_id": _id(operator)},
            headers=admin,
        )
    )["token"]
    facility = _ok(
        http.post(
            "/v1/facilities",
            json={
                "operator_id": _id(operator),
                "name": f"Load site {seed}",
                "country": "US",
                "latitude": 32.45,
                "longitude": -99.73,
                "declared_power_kw": 2_000_000,
            },
            headers={"Authorization": f"Bearer {operator_token}"},
        )
    )
    return FleetAccounts(
        vendor_id=_id(vendor),
        vendor_token=str(vendor_token),
        operator_id=_id(operator),
        operator_token=str(operator_token),
        facility_id=_id(facility),
        root_pem=root_pem,
        root_key=root_key,
        operator_key=_key(seed, "operator"),
    )


BATCH_CHIPS = 10_000  # the most chips one POST /v1/chips/batch takes


def chip_items(accounts: FleetAccounts, chips: Sequence[LoadChip]) -> list[dict[str, object]]:
    """The ``POST /v1/chips/batch`` items of ``chips``: each endorsed by the vendor's root."""
    return [
        {
            "certificate_pem": issue_chip_certificate(
                root_pem=accounts.root_pem,
                root_key=accounts.root_key,
                chip_id=chip.chip_id,
                model="H100-SXM5-80GB",
                chip_key=chip.key.public_key,
                not_before=VALID_FROM,
                not_after=VALID_TO,
            ).decode(),
            "peak_tflops_bf16": 989.0,
            "tdp_watts": 700.0,
        }
        for chip in chips
    ]


def enroll_items(
    http: httpx.Client, accounts: FleetAccounts, items: Sequence[dict[str, object]]
) -> list[float]:
    """Enroll ``items`` in bulk (``POST /v1/chips/batch``, 10,000 per call); each call's seconds."""
    vendor = {"Authorization": f"Bearer {accounts.vendor_token}"}
    seconds = []
    for start in range(0, len(items), BATCH_CHIPS):
        began = time.perf_counter()
        _ok(
            http.post(
                "/v1/chips/batch",
                json={"vendor_id": accounts.vendor_id, "chips": items[start : start + BATCH_CHIPS]},
                headers=vendor,
                timeout=300,
            )
        )
        seconds.append(time.perf_counter() - began)
    return seconds


def enroll(
    http: httpx.Client, accounts: FleetAccounts, chips: Sequence[LoadChip], *, threads: int = 16
) -> None:
    """Enroll every chip in bulk (:func:`enroll_items`), then install each.

    Installations are one signed declaration and one call per chip; the calls share one client
    (and its keep-alive connections) and 16 threads keep enough of them in flight to overlap the
    signing here with each call's commit in the registry.
    """
    operator = {"Authorization": f"Bearer {accounts.operator_token}"}
    enroll_items(http, accounts, chip_items(accounts, chips))

    def install(chip: LoadChip) -> None:
        _ok(
            http.post(
                "/v1/installations",
                json=sign_installation_declaration(
                    chip_id=chip.chip_id,
                    facility_id=accounts.facility_id,
                    installed_at=INSTALLED_AT,
                    key=accounts.operator_key,
                ).to_dict(),
                headers=operator,
            )
        )

    with ThreadPoolExecutor(max_workers=threads) as pool:
        # list() re-raises the first failure.
        list(pool.map(install, chips))


def _chain(chip: LoadChip, count: int) -> Iterator[bytes]:
    """``count`` consecutive signed reports of one chip, as envelope JSON bytes."""
    prev, start = GENESIS_DIGEST, T0
    key_id = chip.key.public_key.key_id
    for seq in range(1, count + 1):
        report = UsageReport(
            chip_id=chip.chip_id,
            key_id=key_id,
            seq=seq,
            prev_digest=prev,
            window_start=start,
            window_end=start + WINDOW,
            utilization=0.25 + 0.5 * ((seq * 7919) % 100) / 100,
            energy_j=0.5 * 700 * WINDOW.total_seconds(),
            interconnect=(),
        )
        envelope = sign_report(report, chip.key)
        prev, start = report_digest(envelope.payload), report.window_end
        yield envelope.to_json()


def slot_path(fleet_dir: Path, slot: int) -> Path:
    return fleet_dir / f"slot-{slot:04d}.jsonl"


def write_slots(
    chips: Sequence[LoadChip],
    *,
    reports_per_chip: int,
    slots: int,
    batch_size: int,
    out: Path,
    operator_token: str,
) -> dict[str, object]:
    """Sign ``reports_per_chip`` reports per chip into ``slots`` files of batch bodies.

    Chip ``n`` belongs to slot ``n % slots``. Within a slot, batches go round by round (every
    chip's report 1, then every chip's report 2, ...), so a batch mostly holds distinct chips
    as a real operator's agents would send them, and posting the slot's lines in order keeps
    every chain valid. Writes ``manifest.json`` beside the slot files and returns it.
    """
    if slots < 1 or batch_size < 1 or reports_per_chip < 1:
        raise ValueError("slots, batch_size and reports_per_chip must be positive")
    out.mkdir(parents=True, exist_ok=True)
    total_batches = 0
    for slot in range(slots):
        mine = chips[slot::slots]
        chains = [_chain(chip, reports_per_chip) for chip in mine]
        pending: list[bytes] = []
        with slot_path(out, slot).open("wb") as f:
            for _ in range(reports_per_chip):
                for chain in chains:
                    pending.append(next(chain))
                    if len(pending) == batch_size:
                        f.write(b'{"reports":[' + b",".join(pending) + b"]}\n")
                        pending.clear()
                        total_batches += 1
            if pending:
                f.write(b'{"reports":[' + b",".join(pending) + b"]}\n")
                total_batches += 1
    manifest: dict[str, object] = {
        "chips": len(chips),
        "reports_per_chip": reports_per_chip,
        "reports": len(chips) * reports_per_chip,
        "slots": slots,
        "batch_size": batch_size,
        "batches": total_batches,
        "operator_token": operator_token,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.fleet", description=__doc__)
    p.add_argument("--url", required=True, help="registry base URL (loopback)")
    p.add_argument("--admin-token", required=True)
    p.add_argument("--chips", type=int, default=1000)
    p.add_argument("--reports", type=int, default=10, help="reports per chip")
    p.add_argument("--slots", type=int, default=4, help="one per locust user")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", default="loadtest")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    chips = make_chips(args.chips, args.seed)
    t0 = time.monotonic()
    with httpx.Client(base_url=args.url, timeout=60) as http:
        accounts = create_accounts(http, args.admin_token, args.seed)
        enroll(http, accounts, chips)
    t1 = time.monotonic()
    manifest = write_slots(
        chips,
        reports_per_chip=args.reports,
        slots=args.slots,
        batch_size=args.batch_size,
        out=args.out,
        operator_token=accounts.operator_token,
    )
    t2 = time.monotonic()
    print(
        f"enrolled {len(chips)} chips in {t1 - t0:.1f} s; signed {manifest['reports']} reports "
        f"into {manifest['batches']} batches in {t2 - t1:.1f} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
