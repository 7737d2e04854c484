"""``chipreg verify``: run the verifier over the registry database and print its findings."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from attestation.timefmt import parse_time
from registry.api.context import utc_now
from registry.cli.render import describe_finding, table
from registry.db.engine import make_engine, make_session_factory
from registry.db.migrate import upgrade
from registry.errors import InvalidRequest
from registry.services.findings import finding_document
from registry.services.verification import VerificationRun, VerificationService
from registry.settings import Settings
from registry.workers.verifier import VerifierWorker
from verifier.findings import Finding
from verifier.policy import builtin_policy_names, load_builtin_policy

__all__ = ["add_parser", "findings_table"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="run the verifier and store and print its findings",
        description="Judge every stored report up to --as-of with a versioned policy, store "
        "findings not seen before, and print all current findings.",
    )
    p.add_argument(
        "--policy", default="default", help=f"one of {', '.join(builtin_policy_names())}"
    )
    p.add_argument(
        "--as-of", help="RFC 3339 UTC time to judge at, not in the future (default: now)"
    )
    p.add_argument("--since", help="judge only the period from this RFC 3339 UTC time")
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep running: judge each reporting window as it closes (CHIPREG_VERIFIER_WINDOW_S, "
        "after CHIPREG_VERIFIER_SETTLE_S) and deliver new findings to the webhooks",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print findings as JSON lines, each in the public form of GET /v1/findings "
        "(id, fingerprint, rule_id, kind, severity, status, subject_type, subject_id, ...)",
    )
    p.set_defaults(func=_verify)


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    # An unknown policy or a malformed time exits 2 through the CLI's one error handler.
    policy = load_builtin_policy(args.policy)
    as_of: datetime | None = parse_time(args.as_of) if args.as_of else None
    since: datetime | None = parse_time(args.since) if args.since else None
    engine = make_engine(settings.database_url)
    upgrade(engine)
    if args.follow:
        worker = VerifierWorker(
            make_session_factory(engine), settings, policy, utc_now, on_step=_print_runs
        )
        print(f"chipreg verify: following with policy {policy.policy_id}", flush=True)
        try:
            worker.run_forever()
        except KeyboardInterrupt:
            return 0
        return 0
    with make_session_factory(engine)() as session:
        try:
            run = VerificationService(session, utc_now).run(policy, as_of=as_of, since=since)
        except InvalidRequest as exc:
            print(f"chipreg verify: {exc.code}: {exc}")
            return 2
        # The public form of each finding, as GET /v1/findings and the webhooks show it; read
        # from the rows before the commit expires them.
        documents = [finding_document(row) for row in run.stored]
        session.commit()
    if args.json:
        for document in documents:
            print(json.dumps(document, sort_keys=True))
    else:
        print(summary(run))
    return 0


def _print_runs(runs: list[VerificationRun]) -> None:
    for run in runs:
        print(summary(run), flush=True)


def summary(run: VerificationRun) -> str:
    head = (
        f"verifier policy {run.policy_id} v{run.policy_version} as of "
        f"{run.as_of:%Y-%m-%d %H:%M:%SZ}: {run.reports_examined} reports, "
        f"{len(run.findings)} findings ({run.new_findings} new)"
    )
    return head + ("\n\n" + findings_table(run.findings) if run.findings else "")


def findings_table(findings: list[Finding]) -> str:
    rows = []
    for f in findings:
        what = describe_finding(f.kind, f.details, f.summary)
        rows.append(
            [
                f.severity,
                f.kind,
                f.subject_id,
                f.facility_id or "-",
                f.country or "-",
                what,
                len(f.evidence),
            ]
        )
    return table(["severity", "kind", "subject", "facility", "country", "what", "evidence"], rows)
