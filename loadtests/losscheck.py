"""The loss check: every acknowledged report is stored once, in the log once, and nothing else.

Reads the registry's database directly after a load run and compares it with the ack files the
locust users wrote. Any difference is a lost or duplicated report and fails the run. The log is
checked as sequenced (``log_sequence``: one entry per index, dense) and as integrated
(``log_state``: the tree head is the Merkle root of its first ``size`` leaves; with
``integrated=True`` it must cover every entry, i.e. the integrator caught up). Also here:
:func:`checkpoint_latency`, the time from each acknowledgement to the first checkpoint seen
that covers the report.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from attestation import merkle
from attestation.dsse import Envelope
from attestation.report import parse_statement

__all__ = ["Ack", "LossReport", "check", "checkpoint_latency", "read_acks"]

REPORT_KIND = "usage_report"


@dataclass(frozen=True)
class Ack:
    chip_id: str
    seq: int
    digest: str
    log_index: int
    at: float


@dataclass
class LossReport:
    acknowledged: int = 0
    stored_reports: int = 0
    log_size: int = 0
    integrated_size: int = 0
    stored_not_acknowledged: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, message: str) -> None:
        # Keep the report readable when something systematic goes wrong.
        if len(self.problems) < 50:
            self.problems.append(message)
        elif len(self.problems) == 50:
            self.problems.append("... (more problems not shown)")


def read_acks(out_dir: Path) -> list[Ack]:
    acks = []
    for path in sorted(out_dir.glob("acks-*.jsonl")):
        for line in path.read_text().splitlines():
            if line:
                chip_id, seq, digest, log_index, at = json.loads(line)
                acks.append(Ack(chip_id, seq, digest, log_index, at))
    return acks


def check(database_url: str, acks: list[Ack], *, integrated: bool = True) -> LossReport:
    """Compare ``acks`` with the reports, log_entries, log_sequence and log_state tables.

    ``integrated``: the integrated tree must cover every stored entry (run after the
    integrator caught up); otherwise only its being a prefix of the stored leaves is checked.
    """
    result = LossReport(acknowledged=len(acks))
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            reports = conn.execute(
                text("SELECT chip_id, seq, digest, log_index FROM reports")
            ).all()
            entries = conn.execute(
                text('SELECT "index", kind, leaf_hash, body FROM log_entries ORDER BY "index"')
            ).all()
            state = conn.execute(text("SELECT size, root_hash FROM log_state")).all()
            sequenced = conn.execute(text("SELECT size FROM log_sequence")).all()
    finally:
        engine.dispose()

    result.stored_reports = len(reports)
    by_key: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for chip_id, seq, digest, log_index in reports:
        by_key.setdefault((chip_id, seq), []).append((digest, log_index))
    for key, rows in by_key.items():
        if len(rows) != 1:
            result.problem(f"report {key} is stored {len(rows)} times")
    for index, n in Counter(r[3] for r in reports).items():
        if n != 1:
            result.problem(f"log index {index} is claimed by {n} reports")

    ack_counts = Counter((a.chip_id, a.seq) for a in acks)
    for key, n in ack_counts.items():
        if n != 1:
            result.problem(f"report {key} was acknowledged {n} times")
    for a in acks:
        rows = by_key.get((a.chip_id, a.seq))
        if not rows:
            result.problem(f"LOST: acknowledged report {a.chip_id} seq {a.seq} is not stored")
            continue
        digest, log_index = rows[0]
        if digest != a.digest or log_index != a.log_index:
            result.problem(
                f"report {a.chip_id} seq {a.seq}: acknowledged ({a.digest[:12]}, {a.log_index}),"
                f" stored ({digest[:12]}, {log_index})"
            )
    result.stored_not_acknowledged = len(set(by_key) - set(ack_counts))

    # The log: one leaf per report, in a dense index range, each leaf the report's envelope.
    result.log_size = len(entries)
    if [e[0] for e in entries] != list(range(len(entries))):
        result.problem("log_entries indexes are not 0..n-1")
    if not sequenced or sequenced[0][0] != len(entries):
        got = sequenced[0][0] if sequenced else None
        result.problem(f"log_sequence.size is {got} but log_entries has {len(entries)} rows")
    if not state:
        result.problem("log_state has no row")
    else:
        size, root = state[0]
        result.integrated_size = size
        leaves = [bytes(e[2]) for e in entries]
        if size > len(entries):
            result.problem(f"log_state.size is {size} but log_entries has {len(entries)} rows")
        elif integrated and size != len(entries):
            result.problem(f"the integrated tree has {size} of the {len(entries)} entries")
        elif merkle.root_from_leaf_hashes(leaves[:size]) != bytes(root):
            result.problem("log_state.root_hash is not the Merkle root of the stored leaves")
    report_entries = [e for e in entries if e[1] == REPORT_KIND]
    if len(report_entries) != len(reports):
        result.problem(
            f"{len(report_entries)} usage_report log entries for {len(reports)} stored reports"
        )
    entry_at = {e[0]: e for e in entries}
    for chip_id, seq, digest, log_index in reports:
        entry = entry_at.get(log_index)
        if entry is None:
            result.problem(f"report {chip_id} seq {seq}: no log entry at {log_index}")
            continue
        _, kind, leaf_hash, body = entry
        body = bytes(body)
        payload = Envelope.from_json(body).payload if kind == REPORT_KIND else b""
        claimed = parse_statement(payload) if payload else None
        if claimed is None or (claimed.chip_id, claimed.seq) != (chip_id, seq):
            result.problem(f"log entry {log_index} is not the envelope of {chip_id}/{seq}")
        elif bytes(leaf_hash) != merkle.leaf_hash(body):
            result.problem(f"log entry {log_index}: leaf hash does not match its body")
        elif hashlib.sha256(payload).hexdigest() != digest:
            result.problem(f"log entry {log_index}: payload does not hash to the stored digest")
    return result


def checkpoint_latency(
    seen: Sequence[tuple[float, int]], acks: Sequence[Ack]
) -> dict[str, float | int | None]:
    """Ack-to-checkpoint latency: for each acknowledged report, the time from its
    acknowledgement to the first checkpoint seen (``seen``: ``(time, size)`` as a client
    polling ``/v1/log/checkpoint`` observed them, in time order) whose size covers its log
    index. p50, p99 and max in ms, and how many reports no observed checkpoint covers."""
    times = [t for t, _ in seen]
    # The largest size seen by each observation: a checkpoint covers every earlier index.
    sizes: list[int] = []
    for _, size in seen:
        sizes.append(max(size, sizes[-1]) if sizes else size)
    delays = []
    uncovered = 0
    for a in acks:
        after = bisect.bisect_left(times, a.at)
        if after and sizes[after - 1] > a.log_index:
            delays.append(0.0)  # covered already when the client stamped its ack
            continue
        # The first observation after the ack whose size covers the index.
        i = max(after, bisect.bisect_right(sizes, a.log_index))
        if i == len(sizes):
            uncovered += 1
            continue
        delays.append(times[i] - a.at)
    delays.sort()

    def pct(q: float) -> float | None:
        if not delays:
            return None
        return round(1000 * delays[min(len(delays) - 1, int(q * len(delays)))], 1)

    return {
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * delays[-1], 1) if delays else None,
        "uncovered": uncovered,
        "observations": len(seen),
    }
