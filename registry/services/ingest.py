"""Batched ingest of signed usage reports.

One batch is one transaction: parse every envelope, take the log's append lock, load the chips
and their custody in one query, verify signatures and hash chains in order, then write the
accepted reports, their log entries and the new chain heads in bulk. The request scope commits;
only after that commit is any report acknowledged. Rejected reports increment a counter per
(reason, chip); those whose chip signature verified (replays, reused sequence numbers, reports
off the chain) are also kept, bounded, as evidence for the clone and replay rules, and all but
byte-identical replays are appended to the log as ``rejected_report`` entries.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from attestation.dsse import Envelope
from attestation.errors import FormatError, KeyMismatchError, SignatureError
from attestation.keys import PublicKey
from attestation.report import OpenedReport, UsageReport, VerifiedReport, open_envelope
from registry.auth import Principal, Role
from registry.repositories.chips import ChipIngestState, ChipRepository
from registry.repositories.reports import ReportRepository
from registry.repositories.submissions import SubmissionRepository
from registry.services.log import TransparencyLog

__all__ = ["REJECTION_STATUS", "Accepted", "IngestService", "Rejected"]

LOG_KIND_REPORT = "usage_report"
LOG_KIND_REJECTED = "rejected_report"
# Signed-but-rejected submissions kept as evidence; the oldest beyond this are dropped.
MAX_REJECTED_SUBMISSIONS = 100_000

# Per-report rejection codes and the HTTP status each stands for (docs/PROTOCOL.md, section 4).
REJECTION_STATUS: dict[str, int] = {
    "malformed_report": 400,
    "forbidden": 403,
    "chip_not_installed": 403,
    "unknown_chip": 404,
    "replayed_report": 409,
    "sequence_reused": 409,
    "sequence_gap": 409,
    "broken_hash_chain": 409,
    "window_out_of_order": 409,
    "bad_signature": 422,
    "key_mismatch": 422,
}


@dataclass(frozen=True)
class Accepted:
    index: int
    chip_id: str
    seq: int
    digest: str
    log_index: int


@dataclass(frozen=True)
class Rejected:
    index: int
    code: str
    detail: str
    chip_id: str | None = None
    seq: int | None = None
    log_index: int | None = None
    # The verified report, when the rejection came after its chip signature verified.
    evidence: VerifiedReport | None = None

    @property
    def status(self) -> int:
        return REJECTION_STATUS[self.code]


@lru_cache(maxsize=1_000_000)
def _public_key(raw: bytes) -> PublicKey:
    # The parsed key object is reused across batches: parsing a key costs about as much as
    # a quarter of a signature check.
    return PublicKey(raw)


@dataclass
class _Head:
    seq: int
    digest: str
    window_end: datetime | None
    log_index: int | None
    changed: bool = False


class IngestService:
    def __init__(self, session: Session, log: TransparencyLog, clock: Callable[[], datetime]):
        self.session = session
        self.log = log
        self.clock = clock
        self.chips = ChipRepository(session)
        self.reports = ReportRepository(session)
        self.submissions = SubmissionRepository(session)

    def ingest(self, envelopes: Sequence[object], caller: Principal) -> list[Accepted | Rejected]:
        caller.require(Role.OPERATOR)
        now = self.clock()
        results: list[Accepted | Rejected | None] = [None] * len(envelopes)
        parsed: list[tuple[int, OpenedReport]] = []
        for i, obj in enumerate(envelopes):
            try:
                opened = open_envelope(Envelope.from_dict(obj))
            except FormatError as exc:
                results[i] = Rejected(i, "malformed_report", str(exc))
                continue
            parsed.append((i, opened))

        # The append lock comes before any read, so chain heads cannot move under us.
        next_index = self.log.lock()
        chips = self.chips.ingest_states(opened.claimed.chip_id for _, opened in parsed)
        heads = {
            c.chip_id: _Head(c.last_seq, c.last_digest, c.last_window_end, c.last_log_index)
            for c in chips.values()
        }

        report_rows: list[dict[str, Any]] = []
        log_bodies: list[bytes] = []
        for i, opened in parsed:
            outcome = self._check(i, opened, chips=chips, heads=heads, caller=caller)
            if isinstance(outcome, Rejected):
                results[i] = outcome
                continue
            report, digest = outcome
            log_index = next_index + len(log_bodies)
            body = opened.envelope.to_json()
            log_bodies.append(body)
            head = heads[report.chip_id]
            head.seq, head.digest, head.window_end = report.seq, digest, report.window_end
            head.log_index, head.changed = log_index, True
            report_rows.append(
                _report_row(report, digest, body, log_index, now, operator_id=caller.operator_id)
            )
            results[i] = Accepted(i, report.chip_id, report.seq, digest, log_index)

        if log_bodies:
            self.log.append(LOG_KIND_REPORT, log_bodies, now)
            self.reports.insert_many(report_rows)
            self.chips.update_heads(
                [
                    {
                        "chip_id": chip_id,
                        "last_seq": h.seq,
                        "last_digest": h.digest,
                        "last_window_end": h.window_end,
                        "last_log_index": h.log_index,
                    }
                    for chip_id, h in sorted(heads.items())
                    if h.changed
                ]
            )
        rejected = Counter((r.code, r.chip_id or "") for r in results if isinstance(r, Rejected))
        if rejected:
            self.reports.count_rejections(rejected, now)
            self._keep_evidence(results, now, caller.operator_id)
        return [r for r in results if r is not None]

    def _keep_evidence(
        self, results: Sequence[Accepted | Rejected | None], now: datetime, operator_id: int | None
    ) -> None:
        signed = [
            (r.code, r.evidence)
            for r in results
            if isinstance(r, Rejected) and r.evidence is not None
        ]
        if not signed:
            return
        # A byte-identical replay is already in the log (the accepted original); anything else
        # is new signed evidence that partners must be able to see.
        bodies = [(code, ev, ev.envelope.to_json()) for code, ev in signed]
        to_log = [body for code, _, body in bodies if code != "replayed_report"]
        index = self.log.append(LOG_KIND_REJECTED, to_log, now) if to_log else 0
        rows = []
        for code, ev, body in bodies:
            log_index = None
            if code != "replayed_report":
                log_index, index = index, index + 1
            rep = ev.report
            rows.append(
                {
                    "chip_id": rep.chip_id,
                    "seq": rep.seq,
                    "digest": ev.digest,
                    "outcome": code,
                    "window_start": rep.window_start,
                    "window_end": rep.window_end,
                    "facility_claim": rep.facility_id,
                    "source_operator_id": operator_id,
                    "envelope": body,
                    "log_index": log_index,
                    "received_at": now,
                }
            )
        self.submissions.insert_many(rows, keep=MAX_REJECTED_SUBMISSIONS)

    def _check(
        self,
        i: int,
        opened: OpenedReport,
        *,
        chips: dict[str, ChipIngestState],
        heads: dict[str, _Head],
        caller: Principal,
    ) -> tuple[UsageReport, str] | Rejected:
        chip_id, seq = opened.claimed.chip_id, opened.claimed.seq
        chip = chips.get(chip_id)
        if chip is None:
            return Rejected(i, "unknown_chip", f"chip {chip_id!r} is not enrolled", chip_id, seq)
        if chip.operator_id is None:
            return Rejected(
                i, "chip_not_installed", f"chip {chip_id!r} is not installed anywhere", chip_id, seq
            )
        if chip.operator_id != caller.operator_id:
            return Rejected(
                i, "forbidden", f"chip {chip_id!r} is not at one of your facilities", chip_id, seq
            )
        try:
            verified = opened.verify(_public_key(chip.public_key))
        except SignatureError as exc:
            return Rejected(i, "bad_signature", str(exc), chip_id, seq)
        except KeyMismatchError as exc:
            return Rejected(i, "key_mismatch", str(exc), chip_id, seq)
        report, digest = verified.report, verified.digest
        head = heads[chip_id]
        if seq <= head.seq:
            stored = head.digest if seq == head.seq else self.reports.digest_at(chip_id, seq)
            if stored == digest:
                return Rejected(
                    i,
                    "replayed_report",
                    f"report {seq} of {chip_id!r} was already accepted",
                    chip_id,
                    seq,
                    evidence=verified,
                )
            return Rejected(
                i,
                "sequence_reused",
                f"chip {chip_id!r} already has a different report with seq {seq}",
                chip_id,
                seq,
                evidence=verified,
            )
        if seq != head.seq + 1:
            return Rejected(
                i,
                "sequence_gap",
                f"expected seq {head.seq + 1} for {chip_id!r}, got {seq}",
                chip_id,
                seq,
                evidence=verified,
            )
        if report.prev_digest != head.digest:
            return Rejected(
                i,
                "broken_hash_chain",
                f"prev_digest does not match the digest of report {head.seq}",
                chip_id,
                seq,
                evidence=verified,
            )
        if head.window_end is not None and report.window_start < head.window_end:
            return Rejected(
                i,
                "window_out_of_order",
                "window starts before the previous report's window ended",
                chip_id,
                seq,
                evidence=verified,
            )
        return report, digest


def _report_row(
    report: UsageReport,
    digest: str,
    body: bytes,
    log_index: int,
    now: datetime,
    *,
    operator_id: int | None,
) -> dict[str, Any]:
    links = [[lt.peer, str(lt.link), lt.tx_bytes, lt.rx_bytes] for lt in report.interconnect]
    return {
        "chip_id": report.chip_id,
        "seq": report.seq,
        "digest": digest,
        "window_start": report.window_start,
        "window_end": report.window_end,
        "utilization": report.utilization,
        "energy_j": report.energy_j,
        "links_json": json.dumps(links, separators=(",", ":")),
        "envelope": body,
        "log_index": log_index,
        "received_at": now,
        "facility_claim": report.facility_id,
        "source_operator_id": operator_id,
    }
