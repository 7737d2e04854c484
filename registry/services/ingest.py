"""Batched ingest of signed usage reports, in two phases.

:meth:`IngestService.prepare` runs on the request's thread, with no lock held: it parses every
envelope, finds each chip's key (a per-process cache in front of one column query), checks
the signatures and hashes the log leaves. :meth:`IngestService.commit` runs on the ingest
writer (registry.ingest) for several prepared batches at once, in one transaction: it takes
the log's sequencing lock, takes chain heads and custodians from the writer's
:class:`SequencerState` (one query for the chips it does not hold), checks custody, replay and
sequence in order, then writes the accepted reports, their log entries (sequenced: the tree
follows in the integrator) and the new chain heads in bulk. The writer commits; only after that
commit is any report acknowledged. Rejected reports increment a
counter per (reason, chip); those whose chip signature verified (replays, reused sequence
numbers, reports off the chain) are also kept, bounded, as evidence for the clone and replay
rules, and appended to the log as ``rejected_report`` records (byte-identical replays at most
once per digest and delivering operator). A correctly signed report delivered by an operator
that is not the chip's custodian (now, nor when the report's window started: the previous
custodian may still deliver the last reports of its stay) is refused ``forbidden`` but kept
and logged the same way: a chip key used through another account is a clone's or a
replayer's trace.

Time bounds: a window may not end beyond the clock skew after receipt (``window_in_future``,
checked in :meth:`IngestService.prepare`) nor start before the chip's first declared
installation (``window_before_installation``, under the lock, with custody). Neither is kept as
evidence: an agent whose clock ran ahead may sign the same sequence number again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from attestation.chain import RejectionCode, judge
from attestation.dsse import Envelope
from attestation.errors import FormatError, KeyMismatchError, SignatureError
from attestation.keys import PublicKey
from attestation.logentries import REJECTED_REPORT
from attestation.merkle import leaf_hash
from attestation.records import RejectedReportRecord, ReportReceipt
from attestation.report import OpenedReport, UsageReport, open_envelope
from attestation.timefmt import timestamp
from registry.auth import Principal, Role
from registry.repositories.chips import ChipIngestState, ChipRepository, Stay, custodian_at
from registry.repositories.facilities import FacilityRepository
from registry.repositories.reports import ReportRepository
from registry.repositories.submissions import SubmissionRepository
from registry.services.log import TransparencyLog
from registry.services.sequencer_state import KeyCache, SequencerState

__all__ = [
    "REJECTION_STATUS",
    "Accepted",
    "IngestService",
    "PreparedBatch",
    "Rejected",
    "Verified",
]

LOG_KIND_REPORT = "usage_report"
# The stored form of a report's links: what json.dumps(links, separators=(",", ":")) writes.
_LINKS_ENCODER = json.JSONEncoder(separators=(",", ":"))
LOG_KIND_REJECTED = REJECTED_REPORT
# A chain head: last seq, last digest, last window end, last log index.
# Log entries that move no chip's custody or status: another writer's groups.
_CHAIN_KINDS = frozenset({LOG_KIND_REPORT, REJECTED_REPORT})
# Signed-but-rejected submissions kept as evidence; the oldest beyond this are dropped.
MAX_REJECTED_SUBMISSIONS = 100_000
# Outcomes whose byte-identical repeats are kept and logged at most once per delivering operator.
_ONCE_PER_OPERATOR = frozenset({"replayed_report", "forbidden"})
DEFAULT_MAX_SKEW = timedelta(seconds=120)

# Per-report rejection codes and the HTTP status each stands for (docs/PROTOCOL.md, section 4).
REJECTION_STATUS: dict[str, int] = {  # keyed by RejectionCode (a str)
    RejectionCode.MALFORMED_REPORT: 400,
    RejectionCode.FORBIDDEN: 403,
    RejectionCode.CHIP_NOT_INSTALLED: 403,
    RejectionCode.CHIP_REVOKED: 403,
    RejectionCode.CHIP_DECOMMISSIONED: 403,
    RejectionCode.UNKNOWN_CHIP: 404,
    RejectionCode.UNKNOWN_FACILITY: 404,
    RejectionCode.REPLAYED_REPORT: 409,
    RejectionCode.SEQUENCE_REUSED: 409,
    RejectionCode.SEQUENCE_GAP: 409,
    RejectionCode.BROKEN_HASH_CHAIN: 409,
    RejectionCode.WINDOW_OUT_OF_ORDER: 409,
    RejectionCode.BAD_SIGNATURE: 422,
    RejectionCode.KEY_MISMATCH: 422,
    RejectionCode.WINDOW_IN_FUTURE: 422,
    RejectionCode.WINDOW_BEFORE_INSTALLATION: 422,
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
    evidence: Verified | None = None
    # For ``forbidden`` evidence: a byte-identical copy of the chip's accepted report.
    copy_of_accepted: bool = False

    @property
    def status(self) -> int:
        return REJECTION_STATUS[self.code]


@dataclass(frozen=True, slots=True)
class Verified:
    """A report whose signature checked out; custody and chain are checked at commit."""

    index: int
    report: UsageReport
    digest: str
    body: bytes
    # The body's log leaf hash, computed on the request thread (outside the sequencing lock).
    leaf: bytes


@dataclass
class PreparedBatch:
    """One request's reports after parsing and signature checks, waiting for the writer."""

    caller: Principal
    items: list[Verified | Rejected]
    verify_seconds: float = 0.0

    @property
    def size(self) -> int:
        return len(self.items)


@dataclass
class _Head:
    seq: int
    digest: str
    window_end: datetime | None
    log_index: int | None
    changed: bool = False
    # Digests accepted in this transaction, not yet inserted: replays of them are replays.
    written: dict[int, str] = field(default_factory=dict)


class IngestService:
    def __init__(
        self,
        session: Session,
        log: TransparencyLog,
        clock: Callable[[], datetime],
        *,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> None:
        self.session = session
        self.log = log
        self.clock = clock
        self.max_skew = max_skew
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.reports = ReportRepository(session)
        self.submissions = SubmissionRepository(session)
        self._stays: dict[str, list[Stay]] = {}

    def prepare(
        self, envelopes: Sequence[object], caller: Principal, keys: KeyCache
    ) -> PreparedBatch:
        """Parse and signature-check a batch, without any lock. Reads only chip keys."""
        caller.require(Role.OPERATOR)
        items: list[Verified | Rejected] = []
        opened_at: list[tuple[int, OpenedReport]] = []
        for i, obj in enumerate(envelopes):
            try:
                opened = open_envelope(Envelope.from_dict(obj))
            except FormatError as exc:
                items.append(Rejected(i, "malformed_report", str(exc)))
                continue
            opened_at.append((i, opened))
        missing = {o.claimed.chip_id for _, o in opened_at if keys.get(o.claimed.chip_id) is None}
        if missing:
            for chip_id, raw in self.chips.public_keys(missing).items():
                keys.put(chip_id, PublicKey(raw))
        started = time.perf_counter()
        # A window may not end later than this: it has not happened yet (or the host clock is
        # ahead). Accepted, it would block every honest later report of the chip.
        latest_end = self.clock() + self.max_skew
        for i, opened in opened_at:
            chip_id, seq = opened.claimed.chip_id, opened.claimed.seq
            key = keys.get(chip_id)
            if key is None:
                items.append(
                    Rejected(i, "unknown_chip", f"chip {chip_id!r} is not enrolled", chip_id, seq)
                )
                continue
            try:
                verified = opened.verify(key)
            except SignatureError as exc:
                items.append(Rejected(i, "bad_signature", str(exc), chip_id, seq))
                continue
            except KeyMismatchError as exc:
                items.append(Rejected(i, "key_mismatch", str(exc), chip_id, seq))
                continue
            if verified.report.window_end > latest_end:
                items.append(
                    Rejected(
                        i,
                        "window_in_future",
                        f"the window ends at {timestamp(verified.report.window_end)}, after "
                        f"the registry's clock plus the tolerated skew ({timestamp(latest_end)})",
                        chip_id,
                        seq,
                    )
                )
                continue
            body = opened.envelope.to_json()
            items.append(Verified(i, verified.report, verified.digest, body, leaf_hash(body)))
        items.sort(key=lambda item: item.index)
        return PreparedBatch(caller, items, time.perf_counter() - started)

    def commit(
        self, batches: Sequence[PreparedBatch], state: SequencerState | None = None
    ) -> list[list[Accepted | Rejected]]:
        """Check custody and chains under the sequencing lock and write all batches' accepted
        reports, their log entries (sequenced, not yet integrated) and the new chain heads.

        Batches are taken in order, and so are the reports within each, so two batches for the
        same chip in one commit chain onto each other. ``state``: the chips this process's
        sequencer kept from its previous groups (read again only when another writer appended
        in between); without it every chip is read. The caller commits the transaction, then
        calls ``state.committed()`` (or ``state.invalidate()`` if the commit failed).
        """
        now = self.clock()
        # The sequencing lock comes before any read, so chain heads cannot move under us.
        next_index = self.log.lock()
        cache = state if state is not None else SequencerState()
        if cache.behind(next_index) and self.log.repo.only_kinds(
            cache.size or 0, next_index, _CHAIN_KINDS
        ):
            cache.catch_up(self.reports.heads_between(cache.size or 0, next_index), next_index)
        cache.validate(next_index)
        wanted = {
            item.report.chip_id
            for batch in batches
            for item in batch.items
            if isinstance(item, Verified)
        }
        chips = cache.chips
        missing = [chip_id for chip_id in wanted if chip_id not in chips]
        if missing:
            cache.load(self.chips.ingest_states(missing))
        claimed = {
            item.report.facility_id
            for batch in batches
            for item in batch.items
            if isinstance(item, Verified) and item.report.facility_id is not None
        }
        unknown = claimed - cache.facilities
        if unknown:
            # Facilities are never deleted: one that exists is remembered.
            cache.facilities.update(self.facilities.existing_ids(unknown))
        facilities = cache.facilities
        # Custody histories of the chips delivered by an operator that is not their custodian
        # now (it may have been when the window started), in one query for the group.
        self._stays = self.chips.stays(
            item.report.chip_id
            for batch in batches
            if batch.caller.operator_id is not None
            for item in batch.items
            if isinstance(item, Verified)
            and (chip := chips.get(item.report.chip_id)) is not None
            and chip.operator_id not in (None, batch.caller.operator_id)
        )
        heads = {chip_id: _Head(*cache.head(c)) for chip_id in wanted if (c := chips.get(chip_id))}
        report_rows: list[dict[str, Any]] = []
        log_bodies: list[bytes] = []
        log_leaves: list[bytes] = []
        out: list[list[Accepted | Rejected]] = []
        rejected: Counter[tuple[str, str]] = Counter()
        evidence: list[tuple[Rejected, int | None]] = []
        for batch in batches:
            results: list[Accepted | Rejected] = []
            for item in batch.items:
                outcome = (
                    item
                    if isinstance(item, Rejected)
                    else self._check(
                        item, chips=chips, heads=heads, facilities=facilities, caller=batch.caller
                    )
                )
                if isinstance(outcome, Rejected):
                    rejected[(outcome.code, outcome.chip_id or "")] += 1
                    if outcome.evidence is not None:
                        evidence.append((outcome, batch.caller.operator_id))
                    results.append(outcome)
                    continue
                report, digest = outcome.report, outcome.digest
                log_index = next_index + len(log_bodies)
                log_bodies.append(outcome.body)
                log_leaves.append(outcome.leaf)
                head = heads[report.chip_id]
                head.seq, head.digest, head.window_end = report.seq, digest, report.window_end
                head.log_index, head.changed = log_index, True
                head.written[report.seq] = digest
                report_rows.append(
                    _report_row(report, digest, log_index, now, batch.caller.operator_id)
                )
                results.append(
                    Accepted(outcome.index, report.chip_id, report.seq, digest, log_index)
                )
            out.append(results)

        moved = {chip_id: h for chip_id, h in sorted(heads.items()) if h.changed}
        if log_bodies:
            self.log.append(LOG_KIND_REPORT, log_bodies, now, log_leaves)
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
                    for chip_id, h in moved.items()
                ]
            )
        if rejected:
            self.reports.count_rejections(rejected, now)
        if evidence:
            self._keep_evidence(evidence, now)
        cache.stage(
            {chip_id: (h.seq, h.digest, h.window_end, h.log_index) for chip_id, h in moved.items()},
            self.log.lock_size(),
        )
        return out

    def _keep_evidence(
        self, rejections: Sequence[tuple[Rejected, int | None]], now: datetime
    ) -> None:
        """Keep signed-but-rejected reports for the clone and replay rules, and log each as a
        ``rejected_report`` record (the exact envelope, outcome, delivering operator, receipt
        time; for a replay also the original's log index and receipt time), so partners
        re-derive those rules from the log. A byte-identical replay, or a ``forbidden`` report,
        is kept and logged at most once per (digest, delivering operator): repeats carry no new
        evidence. A ``forbidden`` copy of an accepted report names its original like a replay.
        """
        copies = [
            r.evidence
            for r, _ in rejections
            if r.evidence and (r.code == "replayed_report" or r.copy_of_accepted)
        ]
        kept = self.submissions.kept_once(
            [r.evidence.digest for r, _ in rejections if r.evidence], _ONCE_PER_OPERATOR
        )
        originals = self.reports.receipts({(ev.report.chip_id, ev.report.seq) for ev in copies})
        rows = []
        bodies = []
        for r, operator_id in rejections:
            ev = r.evidence
            if ev is None:
                continue
            rep = ev.report
            original = None
            original_at = None
            if r.code in _ONCE_PER_OPERATOR:
                if (ev.digest, operator_id, r.code) in kept:
                    continue
                kept.add((ev.digest, operator_id, r.code))
            if r.code == "replayed_report" or r.copy_of_accepted:
                receipt = originals.get((rep.chip_id, rep.seq))
                if receipt is not None:
                    original = ReportReceipt(log_index=receipt[0], received_at=receipt[1])
                    original_at = receipt[1]
            bodies.append(
                RejectedReportRecord(
                    envelope=ev.body,
                    digest=ev.digest,
                    outcome=r.code,
                    operator_id=operator_id,
                    received_at=now,
                    original=original,
                ).to_json()
            )
            rows.append(
                {
                    "chip_id": rep.chip_id,
                    "seq": rep.seq,
                    "digest": ev.digest,
                    "outcome": r.code,
                    "window_start": rep.window_start,
                    "window_end": rep.window_end,
                    "facility_claim": rep.facility_id,
                    "source_operator_id": operator_id,
                    "envelope": ev.body,
                    "log_index": None,
                    "received_at": now,
                    "original_received_at": original_at,
                }
            )
        if not bodies:
            return
        first = self.log.append(REJECTED_REPORT, bodies, now)
        for offset, row in enumerate(rows):
            row["log_index"] = first + offset
        self.submissions.insert_many(rows, keep=MAX_REJECTED_SUBMISSIONS)

    def _accepted_digest(self, head: _Head, chip_id: str, seq: int) -> str | None:
        """The digest of the chip's accepted report ``seq`` (this transaction's, or stored)."""
        written = head.written.get(seq)
        return written if written is not None else self.reports.digest_at(chip_id, seq)

    def _check(
        self,
        item: Verified,
        *,
        chips: dict[str, ChipIngestState],
        heads: dict[str, _Head],
        facilities: set[int],
        caller: Principal,
    ) -> Verified | Rejected:
        i, report, digest = item.index, item.report, item.digest
        chip_id, seq = report.chip_id, report.seq
        chip = chips.get(chip_id)
        if chip is None:
            return Rejected(i, "unknown_chip", f"chip {chip_id!r} is not enrolled", chip_id, seq)
        if chip.operator_id is None:
            # No custodian to hold it from anyone (its agent may run before the installation is
            # declared): the same answer for every operator.
            return Rejected(
                i, "chip_not_installed", f"chip {chip_id!r} is not installed anywhere", chip_id, seq
            )
        head = heads[chip_id]
        out_of_service = _status_refusal(i, chip, report)
        # Custody before the chip's status: an operator that does not hold the chip gets the same
        # answer whether it was revoked or decommissioned or not.
        if chip.operator_id != caller.operator_id and (
            caller.operator_id is None
            or custodian_at(self._stays.get(chip_id, ()), report.window_start) != caller.operator_id
        ):
            forbidden = f"chip {chip_id!r} is not at one of your facilities"
            if out_of_service is not None:
                # Not kept as evidence, as before custody came first: a revoked key proves
                # nothing, and reports refused for the chip's status never were.
                return Rejected(i, "forbidden", forbidden, chip_id, seq)
            # Signed by the chip's key but delivered through another account: kept as evidence
            # (a clone, or a copy of the custodian's report), though the caller learns nothing.
            stored = None
            if seq <= head.seq:
                stored = (
                    head.digest if seq == head.seq else self._accepted_digest(head, chip_id, seq)
                )
            return Rejected(
                i,
                "forbidden",
                forbidden,
                chip_id,
                seq,
                evidence=item,
                copy_of_accepted=stored == digest,
            )
        if out_of_service is not None:
            return out_of_service
        if report.facility_id is not None and report.facility_id not in facilities:
            return Rejected(
                i,
                "unknown_facility",
                f"the report claims facility {report.facility_id}, which does not exist",
                chip_id,
                seq,
            )
        if chip.in_service_from is not None and report.window_start < chip.in_service_from:
            return Rejected(
                i,
                "window_before_installation",
                f"the window starts before the chip's first declared installation "
                f"({timestamp(chip.in_service_from)})",
                chip_id,
                seq,
            )
        code = judge(head, report, digest, lambda s: self._accepted_digest(head, chip_id, s))
        if code is not None:
            return Rejected(
                i, code, _chain_detail(code, chip_id, seq, head.seq), chip_id, seq, evidence=item
            )
        return item


def _chain_detail(code: RejectionCode, chip_id: str, seq: int, head_seq: int) -> str:
    """The human-readable detail of a chain rejection (the code is the contract)."""
    return {
        RejectionCode.REPLAYED_REPORT: f"report {seq} of {chip_id!r} was already accepted",
        RejectionCode.SEQUENCE_REUSED: (
            f"chip {chip_id!r} already has a different report with seq {seq}"
        ),
        RejectionCode.SEQUENCE_GAP: f"expected seq {head_seq + 1} for {chip_id!r}, got {seq}",
        RejectionCode.BROKEN_HASH_CHAIN: (
            f"prev_digest does not match the digest of report {head_seq}"
        ),
        RejectionCode.WINDOW_OUT_OF_ORDER: (
            "window starts before the previous report's window ended"
        ),
    }[code]


def _status_refusal(i: int, chip: ChipIngestState, report: UsageReport) -> Rejected | None:
    """The refusal of a report because the chip is out of service (revoked, or decommissioned
    before the window ended), told only to the chip's custodian; None if it may report."""
    chip_id, seq = chip.chip_id, report.seq
    if chip.revoked_at is not None:
        # Its key is no longer trusted: nothing it signs counts, whatever the window.
        return Rejected(i, "chip_revoked", f"chip {chip_id!r} was revoked", chip_id, seq)
    if chip.decommissioned_at is not None and report.window_end > chip.decommissioned_at:
        # Its backlog (windows ending by the decommission) is still taken.
        return Rejected(
            i,
            "chip_decommissioned",
            f"chip {chip_id!r} was decommissioned at {timestamp(chip.decommissioned_at)}",
            chip_id,
            seq,
        )
    return None


def _report_row(
    report: UsageReport, digest: str, log_index: int, now: datetime, operator_id: int | None
) -> dict[str, Any]:
    links = report.interconnect
    links_json = (
        _LINKS_ENCODER.encode([[lt.peer, lt.link.value, lt.tx_bytes, lt.rx_bytes] for lt in links])
        if links
        else "[]"
    )
    return {
        "chip_id": report.chip_id,
        "seq": report.seq,
        "digest": digest,
        "window_start": report.window_start,
        "window_end": report.window_end,
        "utilization": report.utilization,
        "energy_j": report.energy_j,
        "links_json": links_json,
        "log_index": log_index,
        "received_at": now,
        "facility_claim": report.facility_id,
        "source_operator_id": operator_id,
    }
