"""Prometheus metrics, declared once. Names follow Prometheus conventions (units in the name)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SIZE",
    "INGEST_SECONDS",
    "LOG_SIZE",
    "REPORTS_ACCEPTED",
    "REPORTS_REJECTED",
]

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
    "Time to verify, store and log one ingest batch (before the commit).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LOG_SIZE = Gauge("chipreg_log_entries", "Entries in the transparency log.")
