"""The audit: checkpoint and cosignatures, the tree, consistency with what was seen before,
every entry re-verified, every verifier run re-derived. One verdict, every discrepancy listed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from attestation import merkle
from attestation.checkpoint import Checkpoint, verify_checkpoint
from attestation.cosignature import Cosignature, CosignatureVerifier, verify_cosignatures
from attestation.errors import AttestationError
from attestation.note import NoteVerifier
from audit.facts import FindingsCheck, check_run, ledger_of
from audit.records import Problem
from audit.replay import Replay

__all__ = [
    "AuditReport",
    "LogEntryIn",
    "SeenCheckpoint",
    "TrustPolicy",
    "audit_log",
    "check_served_findings",
    "load_seen",
    "save_seen",
]


@dataclass(frozen=True)
class TrustPolicy:
    """What the auditor trusts: the log key, witness keys and how many must cosign, and
    (optionally) the vendor roots by SHA-256 fingerprint."""

    log: NoteVerifier
    witnesses: Sequence[CosignatureVerifier] = ()
    quorum: int = 0
    vendor_fingerprints: Collection[str] | None = None


@dataclass(frozen=True)
class LogEntryIn:
    """An entry as the registry served it (its claimed leaf hash is checked, not trusted)."""

    index: int
    kind: str
    body: bytes
    leaf_hash: bytes | None = None


@dataclass(frozen=True)
class SeenCheckpoint:
    """The last checkpoint this auditor verified, kept in its state file."""

    size: int
    root_hash: bytes


@dataclass
class AuditReport:
    checkpoint: Checkpoint | None = None
    cosignatures: list[Cosignature] = field(default_factory=list)
    entries: int = 0
    problems: list[Problem] = field(default_factory=list)
    runs: list[FindingsCheck] = field(default_factory=list)
    replay: Replay | None = None
    consistent_with: SeenCheckpoint | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.runs)

    def summary_rows(self) -> list[list[object]]:
        """The summary table: one row per check, with its count and outcome."""
        rp = self.replay
        by_check: dict[str, int] = {}
        for p in self.problems:
            by_check[p.check] = by_check.get(p.check, 0) + 1

        def status(*checks: str) -> str:
            n = sum(by_check.get(c, 0) for c in checks)
            return "OK" if n == 0 else f"FAIL ({n})"

        cp = self.checkpoint
        rows: list[list[object]] = [
            ["checkpoint signature", cp.size if cp else "-", status("checkpoint")],
            [
                "witness cosignatures",
                ", ".join(c.name for c in self.cosignatures) or "none",
                status("cosignatures"),
            ],
            ["entries and tree root", self.entries, status("tree", "sequence_index", "leaf")],
            [
                "consistency with last audit",
                self.consistent_with.size if self.consistent_with else "first audit",
                status("consistency"),
            ],
        ]
        if rp is not None:
            kinds = sorted(k for k in rp.counts if k != "not_checked")
            for kind in kinds:
                rows.append([f"entries: {kind}", rp.counts[kind], status(kind)])
            rows.append(["signatures re-verified", rp.signatures_checked, status("kind")])
            rows.append(
                [
                    "sequence numbers and hash chains",
                    len(rp.reports),
                    status("sequence", "hash_chain", "window"),
                ]
            )
        failed_runs = [r for r in self.runs if not r.ok]
        rows.append(
            [
                "verifier runs re-derived",
                f"{len(self.runs)} runs, {sum(r.derived for r in self.runs)} findings",
                "OK" if not failed_runs else f"FAIL ({len(failed_runs)})",
            ]
        )
        if "served_findings" in by_check:
            rows.append(["served findings logged", "-", status("served_findings")])
        return rows

    def discrepancies(self) -> list[str]:
        out = [
            f"entry {p.index}: [{p.check}] {p.detail}"
            if p.index is not None
            else f"[{p.check}] {p.detail}"
            for p in self.problems
        ]
        for r in self.runs:
            if r.ok:
                continue
            run = r.run.record
            head = f"verifier run at entry {r.run.index} ({run.policy_id} as of {run.as_of})"
            if r.error:
                out.append(f"{head}: {r.error}")
            for what, fps in (
                ("re-derived but not published", r.missing),
                ("published but not re-derived", r.extra),
                ("published with different content", r.changed),
            ):
                if fps:
                    out.append(f"{head}: {len(fps)} findings {what}: {', '.join(fps[:3])}")
        return out


def check_checkpoint(note: str, policy: TrustPolicy, report: AuditReport) -> Checkpoint | None:
    """Verify the log's signature and the witness quorum; record problems in ``report``."""
    try:
        cp = verify_checkpoint(note, policy.log)
    except AttestationError as exc:
        report.problems.append(Problem(None, "checkpoint", str(exc)))
        return None
    report.checkpoint = cp
    try:
        _, cosigs = verify_cosignatures(note, policy.witnesses)
    except AttestationError as exc:
        report.problems.append(Problem(None, "cosignatures", str(exc)))
        cosigs = []
    report.cosignatures = cosigs
    if len(cosigs) < policy.quorum:
        report.problems.append(
            Problem(
                None,
                "cosignatures",
                f"{len(cosigs)} trusted witness cosignatures, the policy needs {policy.quorum}",
            )
        )
    return cp


def audit_log(
    note: str,
    entries: Iterable[LogEntryIn],
    policy: TrustPolicy,
    *,
    seen: SeenCheckpoint | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Audit the whole log against its checkpoint ``note`` (entries in index order)."""
    report = AuditReport()
    cp = check_checkpoint(note, policy, report)
    replay = Replay(trusted_vendor_fingerprints=policy.vendor_fingerprints)
    report.replay = replay
    tree = merkle.CompactRange()
    expected = 0
    for entry in entries:
        if entry.index != expected:
            report.problems.append(
                Problem(entry.index, "sequence_index", f"expected entry {expected} here")
            )
        expected = entry.index + 1
        leaf = merkle.leaf_hash(entry.body)
        if entry.leaf_hash is not None and entry.leaf_hash != leaf:
            report.problems.append(
                Problem(entry.index, "leaf", "served leaf hash is not the hash of the entry")
            )
        if seen is not None and tree.size == seen.size and seen.size > 0:
            _check_seen(report, seen, tree.root())
        tree.append(leaf)
        replay.feed(entry.index, entry.kind, entry.body)
        report.entries += 1
        if progress is not None:
            progress(report.entries)
    if seen is not None and tree.size == seen.size and seen.size > 0:
        _check_seen(report, seen, tree.root())
    if seen is not None and seen.size > tree.size:
        report.problems.append(
            Problem(None, "consistency", f"the log shrank: {seen.size} seen, {tree.size} now")
        )
    if cp is not None:
        if tree.size != cp.size:
            report.problems.append(
                Problem(None, "tree", f"{tree.size} entries, the checkpoint says {cp.size}")
            )
        elif tree.root() != cp.root_hash:
            report.problems.append(
                Problem(None, "tree", "the entries do not hash to the checkpoint's root")
            )
    report.problems.extend(replay.problems)
    ledger = ledger_of(replay)
    report.runs = [check_run(replay, run, ledger) for run in replay.runs]
    return report


def check_served_findings(report: AuditReport, served: Iterable[dict[str, object]]) -> int:
    """Every finding the registry serves (``GET /v1/findings``) must come from a logged run:
    same fingerprint, rule, subject and evidence. Returns how many were compared."""
    logged: dict[str, dict[str, object]] = {}
    for check in report.runs:
        for f in check.run.record.findings:
            logged[str(f.get("fingerprint"))] = f
    n = 0
    for f in served:
        n += 1
        fp = str(f.get("fingerprint"))
        match = logged.get(fp)
        if match is None:
            report.problems.append(
                Problem(None, "served_findings", f"finding {fp[:16]} is served but never logged")
            )
            continue
        for key in ("rule_id", "subject_id", "kind", "evidence"):
            if f.get(key) != match.get(key):
                report.problems.append(
                    Problem(None, "served_findings", f"finding {fp[:16]}: served {key} differs")
                )
    return n


def _check_seen(report: AuditReport, seen: SeenCheckpoint, root: bytes) -> None:
    report.consistent_with = seen
    if root != seen.root_hash:
        report.problems.append(
            Problem(
                None,
                "consistency",
                f"the first {seen.size} entries no longer hash to the root seen before: "
                "the history was rewritten (or this is a fork)",
            )
        )


def load_seen(path: Path, origin: str) -> SeenCheckpoint | None:
    """The last checkpoint verified for ``origin`` from the auditor's state file."""
    if not path.exists():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    head = doc.get("logs", {}).get(origin)
    if head is None:
        return None
    return SeenCheckpoint(int(head["size"]), base64.b64decode(head["root_hash"]))


def save_seen(path: Path, cp: Checkpoint, note: str) -> None:
    doc = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"logs": {}}
    doc.setdefault("logs", {})[cp.origin] = {
        "size": cp.size,
        "root_hash": base64.b64encode(cp.root_hash).decode(),
        "checkpoint": note,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    tmp.replace(path)
