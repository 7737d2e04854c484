"""The host agent: collect signed usage reports for each window, spool them, send them.

Data flow for one window: backend telemetry -> :class:`attestation.report.UsageReport` ->
statement bytes -> chip signature over the DSSE PAE -> envelope -> spool (durable) -> chain
state -> registry batch post -> ack (delete) or reject (move aside). The agent is untrusted
operator software: it never holds chip keys, it only carries what the chips signed.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.backends.base import (
    Accelerator,
    AcceleratorBackend,
    SupportsGpuEvidence,
    SupportsSampling,
)
from agents.chain import ChainHead, ChainState
from agents.client import RegistryClient
from agents.errors import (
    AgentError,
    GpuEvidenceUnavailable,
    RegistryRejected,
    RetryLater,
    TransportError,
)
from agents.gpu_attest import answer_gpu_challenge
from agents.metrics import AgentMetrics, ChipWindow
from agents.spool import Spool, SpoolItem
from agents.status import WindowStats, record_flush, record_window
from attestation.dsse import INTOTO_PAYLOAD_TYPE, Envelope, Signature, pae
from attestation.report import MAX_FACILITY_ID, UsageReport, encode_statement, report_digest
from attestation.timefmt import format_time

__all__ = ["Agent", "FlushStats", "default_jitter", "flush_spool"]

_log = logging.getLogger(__name__)
_MAX_BATCH = 1000  # the registry's per-request limit (registry_api.md)


@dataclass(frozen=True)
class FlushStats:
    """What one :meth:`Agent.flush` did.

    ``interrupted_by`` is set when the registry was unreachable or overloaded; the reports not
    yet acknowledged stay in the spool for the next flush. ``deferred`` counts reports the
    registry refused for now only (a window ending after its clock: this host's clock runs
    ahead) and the later reports of the same chips, kept in the spool for a later flush.
    """

    sent: int = 0
    acknowledged: int = 0
    rejected: int = 0
    interrupted_by: TransportError | None = None
    deferred: int = 0


def default_jitter(interval: timedelta) -> float:
    """Seconds of random delay before a window's flush: a tenth of the window, at most 60 s.

    Without it every agent of a fleet posts at the same instant at each window boundary.
    """
    return min(60.0, interval.total_seconds() / 10)


def flush_spool(spool: Spool, client: RegistryClient, batch_size: int = 256) -> FlushStats:
    """Send ``spool``'s reports in batches until it is empty or the registry is not.

    Acknowledged reports (accepted, or already stored: ``replayed_report``) are deleted;
    reports rejected for good are moved to ``rejected/``; on a transport error or overload the
    flush stops and everything not acknowledged stays spooled. Used by the running agent and
    by ``chipreg agent upload`` for directories written with ``--offline``.
    """
    sent = acked = rejected = 0
    while True:
        items = spool.pending(limit=batch_size)
        if not items:
            break
        try:
            result = client.post_batch([item.read() for item in items])
        except TransportError as exc:
            _log.warning("flush interrupted, %d report(s) kept in spool: %s", len(items), exc)
            return FlushStats(sent, acked, rejected, interrupted_by=exc)
        sent += len(items)
        answered: set[int] = set()
        # Chips with a report refused for now: their later reports stay spooled too, or
        # moving them aside (they would not chain) would break the chain for good.
        held: set[str] = set()
        deferred = 0
        for r in sorted(result.results, key=lambda r: r.index):
            item = items[r.index]
            answered.add(r.index)
            if r.acknowledged:
                spool.ack(item)
                acked += 1
            elif r.retry_later or item.chip_id in held:
                held.add(item.chip_id)
                deferred += 1
                _log.warning(
                    "registry deferred %s seq %d: %s %s (is this host's clock ahead?)",
                    item.chip_id,
                    item.seq,
                    r.code,
                    r.detail or "",
                )
            else:
                code = r.code or "rejected"
                detail = r.detail or ""
                _log.error(
                    "registry rejected %s seq %d: %s %s", item.chip_id, item.seq, code, detail
                )
                spool.reject(item, code, detail)
                rejected += 1
        if len(answered) < len(items):
            # Reports without a verdict stay spooled; stop rather than resend in a loop.
            partial = TransportError(
                f"registry answered {len(answered)} of {len(items)} reports in a batch"
            )
            return FlushStats(sent, acked, rejected, interrupted_by=partial, deferred=deferred)
        if deferred:
            return FlushStats(sent, acked, rejected, deferred=deferred)
    return FlushStats(sent, acked, rejected)


def _whole_seconds(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise AgentError(f"window boundary {dt.isoformat()} has no time zone")
    return dt.astimezone(UTC).replace(microsecond=0)


class Agent:
    """Reports for every accelerator a backend discovers, through a durable spool."""

    def __init__(
        self,
        backend: AcceleratorBackend,
        spool: Spool,
        chain: ChainState,
        client: RegistryClient | None,
        *,
        batch_size: int = 256,
        facility_id: int | None = None,
        jitter_s: float = 0.0,
        rng: random.Random | None = None,
        metrics: AgentMetrics | None = None,
        status_file: Path | None = None,
    ) -> None:
        """``facility_id``, when given, is the registry facility this host is in: every report
        then carries it as ``predicate.facility_id``, a claim the chip signs (PROTOCOL.md 2.1)
        and the verifier checks against the chip's installation.

        ``jitter_s``: the flush after a window waits a random 0..jitter_s seconds drawn from
        ``rng`` (seed it for reproducible runs). ``metrics`` and ``status_file``, when given,
        are updated after every window and flush."""
        if not 1 <= batch_size <= _MAX_BATCH:
            raise AgentError(f"batch_size must be in 1..{_MAX_BATCH}, got {batch_size}")
        if facility_id is not None and (
            type(facility_id) is not int or not 1 <= facility_id <= MAX_FACILITY_ID
        ):
            raise AgentError(f"facility id must be an integer in 1..{MAX_FACILITY_ID}")
        self.backend = backend
        self.spool = spool
        self.chain = chain
        self.client = client
        self.batch_size = batch_size
        self.facility_id = facility_id
        if not 0 <= jitter_s <= 3600:
            raise AgentError(f"jitter must be 0..3600 seconds, got {jitter_s}")
        self.jitter_s = jitter_s
        # Not for cryptography: only spreads the fleet's flushes over time.
        self.rng = rng or random.Random()  # noqa: S311
        self.metrics = metrics
        self.status_file = status_file

    def _build(
        self, accelerator: Accelerator, window_start: datetime, window_end: datetime
    ) -> UsageReport | None:
        head = self.chain.head(accelerator.chip_id)
        if head is not None and head.window_end > window_start:
            # Windows of a chip must never overlap; this window was (partly) reported already.
            _log.warning(
                "skipping %s: window starting %s overlaps its last report (ends %s)",
                accelerator.chip_id,
                window_start.isoformat(),
                head.window_end.isoformat(),
            )
            return None
        seq, prev_digest = self.chain.next_link(accelerator.chip_id)
        telemetry = accelerator.read_window(window_start, window_end)
        return UsageReport(
            chip_id=accelerator.chip_id,
            key_id=accelerator.public_key.key_id,
            seq=seq,
            prev_digest=prev_digest,
            window_start=window_start,
            window_end=window_end,
            utilization=telemetry.utilization,
            energy_j=telemetry.energy_j,
            interconnect=telemetry.interconnect,
            facility_id=self.facility_id,
        )

    def collect(self, window_start: datetime, window_end: datetime) -> list[SpoolItem]:
        """Sign and spool one report per accelerator for the window; advance the chains.

        Every report is durably spooled before any chain head moves (see :mod:`agents.chain`).
        """
        start, end = _whole_seconds(window_start), _whole_seconds(window_end)
        items: list[SpoolItem] = []
        heads: list[tuple[str, ChainHead]] = []
        signed: list[ChipWindow] = []
        for index, accelerator in enumerate(self.backend.discover()):
            report = self._build(accelerator, start, end)
            if report is None:
                continue
            payload = encode_statement(report)
            # The chip signs the PAE, not the payload: DSSE binds the payload type too.
            sig = accelerator.sign(pae(INTOTO_PAYLOAD_TYPE, payload))
            envelope = Envelope(
                payload=payload,
                payload_type=INTOTO_PAYLOAD_TYPE,
                signatures=(Signature(keyid=accelerator.public_key.key_id, sig=sig),),
            )
            items.append(self.spool.put(report.chip_id, report.seq, envelope.to_json()))
            heads.append((report.chip_id, ChainHead(report.seq, report_digest(payload), end)))
            signed.append(ChipWindow(index, accelerator.model, report))
        self.chain.advance(heads)
        if self.metrics is not None:
            self.metrics.signed.inc(len(items))
            self.metrics.observe_chips(signed)
        return items

    def dry_run(self, window_start: datetime, window_end: datetime) -> list[dict[str, object]]:
        """The statements :meth:`collect` would sign for the window, without side effects here.

        Nothing is signed, spooled or advanced. (A hardware backend still reads its counters;
        for NVML that moves the energy/traffic baseline of this process only.)
        """
        start, end = _whole_seconds(window_start), _whole_seconds(window_end)
        statements: list[dict[str, object]] = []
        for accelerator in self.backend.discover():
            report = self._build(accelerator, start, end)
            if report is not None:
                statements.append(json.loads(encode_statement(report)))
        return statements

    def flush(self) -> FlushStats:
        """Send spooled reports in batches until the spool is empty or the registry is not.

        Acknowledged reports (accepted, or already stored) are deleted; reports rejected for
        good are moved to ``rejected/``; on a transport error or overload the flush stops and
        everything not acknowledged stays spooled.
        """
        if self.client is None:
            raise AgentError("no registry client configured (dry-run or offline agent)")
        stats = flush_spool(self.spool, self.client, self.batch_size)
        self._observe_flush(stats)
        return stats

    def _observe_flush(self, stats: FlushStats | None, window: WindowStats | None = None) -> None:
        """Update metrics and the status file; ``stats`` None: nothing was sent (offline, or
        stopped during the jitter), so neither success nor error is recorded."""
        ok = stats is not None and stats.interrupted_by is None
        if self.metrics is not None:
            self.metrics.observe_flush(
                acknowledged=stats.acknowledged if stats else 0,
                rejected=stats.rejected if stats else 0,
                spooled=len(self.spool.pending()),
                ok=ok,
            )
        if self.status_file is not None:
            if stats is None:
                record_window(self.status_file, window)
            else:
                error = None if ok else str(stats.interrupted_by)
                record_flush(self.status_file, error=error, window=window)

    def close_window(
        self,
        window_start: datetime,
        window_end: datetime,
        wait: Callable[[float], bool] = lambda _s: False,
    ) -> WindowStats:
        """Sign and spool the window's reports, wait the jitter, flush, say so in one line.

        ``wait(seconds)`` sleeps and returns True when the agent is being stopped (then the
        reports stay spooled for the next start). Offline agents (no client) only spool.
        """
        return self._close_window(window_start, window_end, wait)[0]

    def _close_window(
        self, window_start: datetime, window_end: datetime, wait: Callable[[float], bool]
    ) -> tuple[WindowStats, FlushStats]:
        items = self.collect(window_start, window_end)
        flushed: FlushStats | None = None
        if self.client is not None and not wait(self.rng.uniform(0.0, self.jitter_s)):
            flushed = flush_spool(self.spool, self.client, self.batch_size)
        stats = flushed or FlushStats()
        window = WindowStats(
            window_start=format_time(_whole_seconds(window_start)),
            window_end=format_time(_whole_seconds(window_end)),
            signed=len(items),
            posted=stats.sent,
            accepted=stats.acknowledged,
            rejected=stats.rejected,
            spooled=len(self.spool.pending()),
        )
        self._observe_flush(flushed, window)
        _log.info(
            "window %s..%s: %d reports signed, %d posted, %d accepted, %d rejected, %d spooled%s",
            window.window_start,
            window.window_end,
            window.signed,
            window.posted,
            window.accepted,
            window.rejected,
            window.spooled,
            "" if stats.interrupted_by is None else f" ({stats.interrupted_by})",
        )
        return window, stats

    def answer_gpu_challenges(self) -> int:
        """Answer the registry's open GPU re-attestation challenges for every accelerator that
        can attest (PROTOCOL.md 11.4); returns how many were answered.

        A GPU that cannot attest is logged with the reason and left unanswered: the verifier's
        ``gpu.attestation_lapsed`` rule then reports the chip, which is the point.
        """
        if self.client is None:
            raise AgentError("no registry client configured (dry-run or offline agent)")
        answered = 0
        for acc in self.backend.discover():
            if not isinstance(acc, SupportsGpuEvidence):
                continue
            try:
                challenges = self.client.open_gpu_challenges(acc.chip_id)
            except RegistryRejected as exc:
                if exc.code != "not_hardware_attested":
                    _log.warning("GPU challenges of %s: %s", acc.chip_id, exc)
                continue
            for challenge in challenges:
                try:
                    body = answer_gpu_challenge(
                        acc, acc.public_key, str(challenge["nonce"]), str(challenge["purpose"])
                    )
                    self.client.post_gpu_evidence(acc.chip_id, body)
                    answered += 1
                except GpuEvidenceUnavailable as exc:
                    _log.error("%s cannot answer its GPU challenge: %s", acc.chip_id, exc)
                    break
                except RegistryRejected as exc:
                    _log.error("registry refused %s's GPU evidence: %s", acc.chip_id, exc)
        return answered

    def run(
        self,
        interval: timedelta,
        stop: threading.Event,
        *,
        sample_every: float = 5.0,
        max_backoff: float = 300.0,
    ) -> None:
        """Report every ``interval`` until ``stop`` is set; windows end on multiples of it.

        The first window runs from start-up to the first boundary (the counters only cover
        that much); later windows are aligned, e.g. :00, :15, :30, :45 for 15 minutes.
        """
        step = interval.total_seconds()
        if step < 1:
            raise AgentError("interval must be at least one second")
        window_start = _whole_seconds(datetime.now(UTC))
        backoff = 0.0
        next_send = 0.0
        while not stop.is_set():
            now = time.time()
            boundary = math.floor(now / step) * step + step
            # Sample and retry sends until the boundary.
            while not stop.is_set() and time.time() < boundary:
                if isinstance(self.backend, SupportsSampling):
                    self.backend.sample()
                if self.client is not None and time.time() >= next_send and backoff > 0:
                    backoff, next_send = self._flush_with_backoff(backoff, max_backoff)
                stop.wait(min(sample_every, max(boundary - time.time(), 0.0)))
            if stop.is_set():
                break
            window_end = datetime.fromtimestamp(boundary, UTC)
            _, stats = self._close_window(window_start, window_end, stop.wait)
            window_start = window_end
            if stats.interrupted_by is not None:
                # Outage or overload: retry with backoff until it is all delivered.
                backoff, next_send = _backoff(stats.interrupted_by, 0.0, max_backoff)
            elif stats.deferred:
                # Reports refused for now (this host's clock ahead): retry them soon.
                backoff, next_send = 1.0, time.time() + 1.0
            if self.client is not None:
                try:
                    self.answer_gpu_challenges()
                except TransportError as exc:
                    _log.warning("GPU challenges not fetched this window: %s", exc)

    def _flush_with_backoff(self, backoff: float, max_backoff: float) -> tuple[float, float]:
        """Flush once; return the next backoff (0 when done) and when to try again."""
        stats = self.flush()
        err = stats.interrupted_by
        if err is None and stats.deferred:
            delay = min(max(backoff * 2, 1.0), max_backoff)
            return delay, time.time() + delay
        if err is None:
            return 0.0, 0.0
        return _backoff(err, backoff, max_backoff)


def _backoff(err: TransportError, backoff: float, max_backoff: float) -> tuple[float, float]:
    """The next backoff after ``err`` and when to try again: Retry-After (429, 503, capped at
    ``max_backoff``), else doubling."""
    if isinstance(err, RetryLater):  # 429 overloaded, 503 database_unavailable
        # Capped: a misconfigured Retry-After must not silence the agent for a day.
        delay = min(max(err.retry_after, 1.0), max_backoff)
    else:
        delay = min(max(backoff * 2, 1.0), max_backoff)
    return delay, time.time() + delay
