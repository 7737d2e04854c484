"""Locust users that replay pre-signed report batches against a registry on 127.0.0.1.

A ``429`` answer (the registry's ingest queue is full) is retried with the same batch after
its ``Retry-After``, as a real agent does; it is counted separately.

Each ``AgentFleet`` user claims one slot file written by :mod:`loadtests.fleet` (a file lock
per slot, so no two users, even in different ``--processes`` workers, share a chip) and posts its
batch bodies in order, one request at a time, until the file is exhausted; then it stops. Every
acknowledged report is appended to ``acks-<pid>.jsonl`` in ``LOADTEST_OUT`` for the runner's loss
check, and per-process totals go to ``stats-<pid>.json`` when the test stops.

Environment:
    LOADTEST_FLEET       directory with manifest.json and slot-*.jsonl (required)
    LOADTEST_OUT         directory for ack and stats files (required)
    LOADTEST_BATCH_SIZE  expected reports per batch; must match the fleet (default 64)
    LOADTEST_USERS       peak users (default: the fleet's slot count)
    LOADTEST_RAMP_S      ramp-up seconds (default 10)
    LOADTEST_HOLD_S      seconds at peak after the ramp (default 30)
    LOADTEST_USER_RATE   batches per second per user; 0 = as fast as responses come (default 0)
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import LoadTestShape, constant, constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

FLEET = Path(os.environ.get("LOADTEST_FLEET", "."))
OUT = Path(os.environ.get("LOADTEST_OUT", "."))
MANIFEST: dict[str, Any] = (
    json.loads((FLEET / "manifest.json").read_text()) if (FLEET / "manifest.json").is_file() else {}
)
BATCH_SIZE = int(os.environ.get("LOADTEST_BATCH_SIZE", "64"))
SLOTS = int(MANIFEST.get("slots", 0))
PEAK_USERS = int(os.environ.get("LOADTEST_USERS", str(SLOTS or 1)))
RAMP_S = float(os.environ.get("LOADTEST_RAMP_S", "10"))
HOLD_S = float(os.environ.get("LOADTEST_HOLD_S", "30"))
USER_RATE = float(os.environ.get("LOADTEST_USER_RATE", "0"))

if MANIFEST and MANIFEST["batch_size"] != BATCH_SIZE:
    msg = f"fleet has batches of {MANIFEST['batch_size']}, LOADTEST_BATCH_SIZE is {BATCH_SIZE}"
    raise SystemExit(msg)


class _Totals:
    """Per-process counts and the ack file; one instance per locust process."""

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.failed_requests = 0
        self.throttled = 0
        self.codes: Counter[str] = Counter()
        self.first_send: float | None = None
        self.last_ack: float | None = None
        self._acks: Any = None

    def ack_file(self) -> Any:
        if self._acks is None:
            OUT.mkdir(parents=True, exist_ok=True)
            self._acks = (OUT / f"acks-{os.getpid()}.jsonl").open("a", buffering=1 << 16)
        return self._acks

    def write_stats(self) -> None:
        if self._acks is not None:
            self._acks.flush()
        stats = {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed_requests": self.failed_requests,
            "throttled": self.throttled,
            "codes": dict(self.codes),
            "first_send": self.first_send,
            "last_ack": self.last_ack,
        }
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"stats-{os.getpid()}.json").write_text(json.dumps(stats))


TOTALS = _Totals()


@events.test_stop.add_listener
def _on_test_stop(**_kwargs: Any) -> None:
    TOTALS.write_stats()


@events.quitting.add_listener
def _on_quitting(**_kwargs: Any) -> None:
    TOTALS.write_stats()


def _claim_slot() -> int | None:
    """Claim the first free slot by creating its lock file; None when all are taken."""
    for slot in range(SLOTS):
        try:
            fd = os.open(OUT / f"slot-{slot:04d}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return slot
    return None


class AgentFleet(FastHttpUser):
    """One operator-side agent host posting its chips' pre-signed batches in order."""

    wait_time = constant_throughput(USER_RATE) if USER_RATE > 0 else constant(0)
    # A batch on a loaded single-process registry can take seconds; a timeout would be
    # counted as a failure and break the slot's chains, so allow plenty.
    network_timeout = 120.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        host = urlsplit(self.host or "").hostname
        if host != "127.0.0.1":
            msg = f"refusing to load anything but 127.0.0.1 (host is {self.host!r})"
            raise SystemExit(msg)
        OUT.mkdir(parents=True, exist_ok=True)
        slot = _claim_slot()
        if slot is None:
            raise StopUser
        self.slot = slot
        self.bodies = (FLEET / f"slot-{slot:04d}.jsonl").read_bytes().splitlines()
        self.next = 0
        self.headers = {
            "Authorization": f"Bearer {MANIFEST['operator_token']}",
            "Content-Type": "application/json",
        }

    def _done(self) -> None:
        (OUT / f"slot-{self.slot:04d}.done").touch()
        raise StopUser

    @task
    def post_batch(self) -> None:
        if self.next >= len(self.bodies):
            self._done()
        body = self.bodies[self.next]
        now = time.time()
        if TOTALS.first_send is None:
            TOTALS.first_send = now
        with self.client.post(
            "/v1/reports/batch",
            data=body,
            headers=self.headers,
            name=f"/v1/reports/batch [{BATCH_SIZE}]",
            catch_response=True,
        ) as response:
            if response.status_code == 429:
                # Back-pressure: nothing of the batch was stored; send the same batch again
                # after Retry-After. Counted under its own name, out of the latency figures.
                TOTALS.throttled += 1
                response.request_meta["name"] = "/v1/reports/batch [429]"
                response.success()
                gevent.sleep(float(response.headers.get("Retry-After") or 1))
                return
            self.next += 1
            if response.status_code != 200:
                TOTALS.failed_requests += 1
                response.failure(f"HTTP {response.status_code}")
                return
            doc = response.json()
            acks = TOTALS.ack_file()
            stamp = time.time()
            for r in doc["results"]:
                if r["status"] == "accepted":
                    acks.write(
                        f'["{r["chip_id"]}",{r["seq"]},"{r["digest"]}",{r["log_index"]},'
                        f"{stamp:.3f}]\n"
                    )
                else:
                    TOTALS.codes[r["code"]] += 1
            TOTALS.accepted += doc["accepted"]
            TOTALS.rejected += doc["rejected"]
            TOTALS.last_ack = stamp
            if doc["rejected"]:
                response.failure(f"{doc['rejected']} of {len(doc['results'])} reports rejected")
            else:
                response.success()


class RampHoldShape(LoadTestShape):
    """Ramp linearly to LOADTEST_USERS over LOADTEST_RAMP_S, hold LOADTEST_HOLD_S, stop.

    Stops earlier once every slot file has been sent completely.
    """

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if t > RAMP_S + HOLD_S:
            return None
        if SLOTS and len(list(OUT.glob("slot-*.done"))) >= SLOTS:
            return None
        users = PEAK_USERS if t >= RAMP_S else max(1, round(PEAK_USERS * t / max(RAMP_S, 1e-9)))
        return users, max(1.0, PEAK_USERS / max(RAMP_S, 1.0))
