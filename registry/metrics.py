"""Prometheus metrics, declared once. Names follow Prometheus conventions (units in the name).

With several worker processes (``chipreg serve --workers N``) ``PROMETHEUS_MULTIPROC_DIR`` is set
before the workers start, and prometheus_client keeps each process's values in files there;
:func:`exposition` merges them. Log size and checkpoint age are read from the database at scrape
time instead, so they are right whichever process answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "BATCH_SIZE",
    "DB_COMMIT_SECONDS",
    "GROUP_COMMIT_BATCHES",
    "GROUP_COMMIT_REPORTS",
    "INGEST_OVERLOADED",
    "INGEST_PENDING",
    "INGEST_SECONDS",
    "REPORTS_ACCEPTED",
    "REPORTS_REJECTED",
    "VERIFY_SECONDS",
    "exposition",
]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REPORTS_ACCEPTED = Counter(
    "chipreg_reports_accepted_total", "Usage reports verified, committed and logged."
)
REPORTS_REJECTED = Counter(
    "chipreg_reports_rejected_total", "Usage reports rejected, by reason.", ["reason"]
)
BATCH_SIZE = Histogram(
    "chipreg_ingest_batch_reports",
    "Reports per ingest request.",
    buckets=(1, 8, 32, 64, 128, 256, 512, 1000, 5000),
)
INGEST_SECONDS = Histogram(
    "chipreg_ingest_duration_seconds",
    "Acknowledgement latency of one ingest request: parse, verify, queue, commit.",
    buckets=_LATENCY_BUCKETS,
)
VERIFY_SECONDS = Histogram(
    "chipreg_ingest_verify_seconds",
    "Signature verification time of one ingest request (all its reports).",
    buckets=_LATENCY_BUCKETS,
)
DB_COMMIT_SECONDS = Histogram(
    "chipreg_db_commit_seconds",
    "Time of one group commit's COMMIT (the fsync).",
    buckets=_LATENCY_BUCKETS,
)
LOG_LOCK_WAIT_SECONDS = Histogram(
    "chipreg_log_lock_wait_seconds",
    "Wait for the SQLite database's write lock (its flock), by holder: ingest or integrator.",
    ["holder"],
    buckets=_LATENCY_BUCKETS,
)
INTEGRATOR_ROUND_SECONDS = Histogram(
    "chipreg_integrator_round_seconds",
    "One integrator round: integrate what was sequenced, then sign and publish the checkpoint.",
    buckets=_LATENCY_BUCKETS,
)
GROUP_COMMIT_BATCHES = Histogram(
    "chipreg_group_commit_batches",
    "Ingest requests coalesced into one transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
GROUP_COMMIT_REPORTS = Histogram(
    "chipreg_group_commit_reports",
    "Reports written in one transaction.",
    buckets=(1, 64, 256, 512, 1024, 2048, 4096, 8192, 16384),
)
INGEST_OVERLOADED = Counter(
    "chipreg_ingest_overloaded_total", "Ingest requests refused with 429 (queue full)."
)
INGEST_PENDING = Gauge(
    "chipreg_ingest_pending_reports",
    "Reports admitted and not yet acknowledged (being verified or waiting for the writer).",
    multiprocess_mode="livesum",
)


class _LogCollector(Collector):
    def __init__(
        self, size: int, updated_at: datetime | None, now: datetime, integrated: int | None
    ) -> None:
        self.size, self.updated_at, self.now = size, updated_at, now
        self.integrated = integrated

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "chipreg_log_entries", "Entries in the transparency log (sequenced).", self.size
        )
        if self.integrated is not None:
            yield GaugeMetricFamily(
                "chipreg_log_integrated_entries",
                "Entries integrated into the Merkle tree (the rest wait for the integrator).",
                self.integrated,
            )
        if self.updated_at is not None:
            yield GaugeMetricFamily(
                "chipreg_checkpoint_age_seconds",
                "Seconds since the log's tree head (the checkpoint it serves) last moved.",
                (self.now - self.updated_at).total_seconds(),
            )


def exposition(
    log_size: int, log_updated_at: datetime | None, now: datetime, integrated: int | None = None
) -> bytes:
    """The text exposition of every metric, merged over worker processes where there are several."""
    registry = CollectorRegistry()
    collector = _LogCollector(log_size, log_updated_at, now, integrated)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(collector)
        return generate_latest(registry)
    registry.register(collector)
    return generate_latest(REGISTRY) + generate_latest(registry)
