"""``chipreg audit``: a treaty partner's audit of the registry's log, trusting only its keys.

The pure audit logic is the ``audit`` package; this is the shell: fetch the checkpoint and the
entries over HTTP (or read an exported bundle), show progress, print the verdict, a summary
table and every discrepancy, remember the checkpoint in a local state file, and exit non-zero
on any discrepancy.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from attestation.certs import load_vendor_root
from attestation.checkpoint import Checkpoint
from attestation.cosignature import CosignatureVerifier
from attestation.errors import AttestationError
from attestation.note import NoteVerifier
from audit.bundle import verify_bundle
from audit.core import (
    AuditReport,
    LogEntryIn,
    TrustPolicy,
    audit_log,
    check_served_findings,
    load_seen,
    save_seen,
)
from audit.exports import cited_indexes, verify_export
from registry.cli.render import table
from registry.settings import Settings

__all__ = ["add_parser", "fetch_entries", "served_findings"]

DESCRIPTION = """\
Audit the registry's transparency log from scratch. Trusted inputs only: the log's verifier
key, the witnesses' cosigner keys (and how many must have cosigned), and the vendor roots.

  chipreg audit --registry https://registry.example --log-vkey VKEY \\
      --witness-vkey WVKEY --quorum 1 --vendor-root nvidia-root.pem

It downloads every entry, recomputes the Merkle tree against the signed, cosigned checkpoint,
checks consistency with the checkpoint it saw last time (--state-file), re-verifies every
signature (vendor certificates, operator-signed declarations, chip-signed reports, rejected
reports, landmark measurements with the chips' answers, meter readings), re-checks
every chip's sequence numbers and hash chain, re-derives every verifier run's findings from the
log alone and compares them with the published ones. Exit status: 0 all consistent, 1 any
discrepancy, 2 bad usage or unreachable registry.

With --bundle FILE it verifies an exported audit bundle (GET /v1/log/bundle) with no network;
with --export FILE a signed inventory or findings export (GET /v1/exports/..., `chipreg query
export`) against its detached signature FILE.sig: the log key's signature, the file's digest, the
checkpoint it was cut at (and its cosignatures), and that every log index it cites is inside it.
See docs/AUDIT.md.
"""

PAGE = 1000


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="audit the registry's log with your own trusted keys (treaty partners)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--registry", help="registry base URL")
    src.add_argument("--bundle", type=Path, help="an exported audit bundle (offline)")
    src.add_argument(
        "--export",
        type=Path,
        help="a signed inventory or findings export (offline; its signature in FILE.sig)",
    )
    p.add_argument(
        "--signature", type=Path, help="the export's detached signature (default: EXPORT.sig)"
    )
    p.add_argument("--log-vkey", required=True, help="the log's verifier key (pin it)")
    p.add_argument(
        "--witness-vkey", action="append", default=[], help="a trusted witness key; repeatable"
    )
    p.add_argument(
        "--quorum",
        type=int,
        help="cosignatures required from the trusted witnesses (default: all of them)",
    )
    p.add_argument(
        "--vendor-root",
        action="append",
        type=Path,
        default=[],
        help="PEM of a trusted vendor root; repeatable (default: accept roots in the log)",
    )
    p.add_argument(
        "--state-file",
        type=Path,
        default=Path("chipreg-audit-state.json"),
        help="where the last verified checkpoint is kept (default: %(default)s)",
    )
    p.add_argument(
        "--token",
        help="a partner API token: also check that every finding the registry serves "
        "(GET /v1/findings) was logged by a verifier run",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout, seconds")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_audit)


def _policy(args: argparse.Namespace) -> TrustPolicy:
    witnesses = [CosignatureVerifier.from_vkey(k) for k in args.witness_vkey]
    fingerprints = None
    if args.vendor_root:
        fingerprints = {load_vendor_root(p.read_bytes()).fingerprint for p in args.vendor_root}
    quorum = len(witnesses) if args.quorum is None else args.quorum
    return TrustPolicy(NoteVerifier.from_vkey(args.log_vkey), witnesses, quorum, fingerprints)


def _audit(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        policy = _policy(args)
    except OSError as exc:  # a malformed key or root exits 2 through the CLI's error handler
        print(f"chipreg audit: {exc}", file=sys.stderr)
        return 2
    if args.bundle is not None:
        return _audit_bundle(args, policy)
    if args.export is not None:
        return _audit_export(args, policy)
    base = args.registry.rstrip("/")
    try:
        with httpx.Client(base_url=base, timeout=args.timeout) as http:
            response = http.get("/v1/log/checkpoint")
            response.raise_for_status()
            note = response.text
            try:
                size = Checkpoint.from_text(note[: note.find("\n\n") + 1]).size
            except AttestationError as exc:
                print(
                    f"chipreg audit: the registry's checkpoint is malformed: {exc}", file=sys.stderr
                )
                return 1
            seen = load_seen(args.state_file, policy.log.name)
            progress = _Progress(size, quiet=args.quiet)
            report = audit_log(
                note, fetch_entries(http, size), policy, seen=seen, progress=progress.update
            )
            progress.done()
            if args.token:
                served = served_findings(http, args.token)
                n = check_served_findings(report, served)
                print(f"compared {n} served findings with the logged runs", file=sys.stderr)
    except httpx.HTTPError as exc:
        print(f"chipreg audit: cannot read the registry at {base}: {exc}", file=sys.stderr)
        return 2
    _print_report(report, f"registry {base}")
    if report.ok and report.checkpoint is not None:
        save_seen(args.state_file, report.checkpoint, note)
        print(f"state: checkpoint {report.checkpoint.size} saved to {args.state_file}")
    return 0 if report.ok else 1


def served_findings(http: httpx.Client, token: str) -> list[dict[str, object]]:
    """Every finding the registry serves to ``token`` (paged)."""
    out: list[dict[str, object]] = []
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        r = http.get("/v1/findings", params={"limit": 1000, "offset": len(out)}, headers=headers)
        r.raise_for_status()
        page = r.json()["findings"]
        out.extend(page)
        if len(page) < 1000:
            return out


def fetch_entries(http: httpx.Client, size: int) -> Iterator[LogEntryIn]:
    """Log entries [0, size) from the registry, in pages it serves."""
    start = 0
    while start < size:
        # The registry serves at most PAGE entries per request (registry.services.log).
        end = min(start + PAGE, size)
        response = http.get("/v1/log/entries", params={"start": start, "end": end})
        response.raise_for_status()
        page = response.json()["entries"]
        if not page:
            return
        for e in page:
            yield LogEntryIn(
                int(e["index"]),
                str(e["kind"]),
                base64.b64decode(e["body"]),
                base64.b64decode(e["leaf_hash"]),
            )
        start = int(page[-1]["index"]) + 1


class _Progress:
    def __init__(self, total: int, *, quiet: bool) -> None:
        self.total = max(total, 1)
        self.quiet = quiet
        self.began = time.monotonic()
        self.last = 0.0

    def update(self, n: int) -> None:
        now = time.monotonic()
        if self.quiet or (now - self.last < 1.0 and n != self.total):
            return
        self.last = now
        rate = n / max(now - self.began, 1e-6)
        print(
            f"\r  verified {n:,}/{self.total:,} entries ({100 * n / self.total:.0f}%, "
            f"{rate:,.0f}/s)",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def done(self) -> None:
        if not self.quiet:
            print(file=sys.stderr)


def _print_report(report: AuditReport, what: str) -> None:
    verdict = "PASS: consistent" if report.ok else "FAIL: discrepancies found"
    print(f"chipreg audit of {what}")
    print(table(["check", "count", "result"], report.summary_rows(), max_width=70))
    problems = report.discrepancies()
    if problems:
        print(f"\nDiscrepancies ({len(problems)}):")
        for line in problems[:200]:
            print(f"  - {line}")
        if len(problems) > 200:
            print(f"  ... and {len(problems) - 200} more")
    print(f"\nVERDICT: {verdict}")


def _verdict(problems: list[str]) -> int:
    """Print the discrepancies and the verdict of an offline check; its exit status."""
    if problems:
        print(f"\nDiscrepancies ({len(problems)}):")
        for line in problems[:200]:
            print(f"  - {line}")
    print(f"\nVERDICT: {'FAIL: discrepancies found' if problems else 'PASS: consistent'}")
    return 1 if problems else 0


def _audit_bundle(args: argparse.Namespace, policy: TrustPolicy) -> int:
    try:
        data = args.bundle.read_bytes()
    except OSError as exc:
        print(f"chipreg audit: {exc}", file=sys.stderr)
        return 2
    result = verify_bundle(data, policy)
    print(f"chipreg audit of bundle {args.bundle} ({result.scope})")
    print(table(["check", "count", "result"], result.summary_rows(), max_width=70))
    return _verdict(result.problems)


def _audit_export(args: argparse.Namespace, policy: TrustPolicy) -> int:
    sig_path = args.signature or args.export.with_name(args.export.name + ".sig")
    try:
        content, signature = args.export.read_bytes(), sig_path.read_bytes()
    except OSError as exc:
        print(f"chipreg audit: {exc}", file=sys.stderr)
        return 2
    result = verify_export(content, signature, policy)
    if result.ok:
        try:
            cited = cited_indexes(content, result.kind, result.fmt)
        except AttestationError as exc:
            result.problems.append(f"[content] {exc}")
        else:
            result = verify_export(content, signature, policy, log_indexes=cited)
    print(f"chipreg audit of {result.kind} export {args.export} ({result.fmt})")
    print(
        f"  signed by the log key at {result.created_at}, cut at checkpoint "
        f"{result.checkpoint_size if result.checkpoint_size is not None else '?'}"
    )
    return _verdict(result.problems)
