"""``chipreg query``: the registry's read API from a terminal, over HTTP with a token.

The token comes from ``--token-file``, the environment (``--token-env``, default
``CHIPREG_TOKEN``) or a named profile (``--profile``) in a TOML file
(``--profiles-file``, default ``$CHIPREG_PROFILES`` or ``~/.config/chipreg/profiles.toml``)::

    [inspector]
    registry = "https://registry.example.org"
    token_file = "/home/me/.chipreg-inspector-token"   # or: token = "chipreg_..."

Exit status: 0 found; 1 not found; 2 bad usage or the registry cannot be reached; 77 the token
was refused (unknown, revoked, or not allowed to read this).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from registry.cli.render import describe_finding, table
from registry.settings import Settings

__all__ = ["add_parser"]

EXIT_NOT_FOUND, EXIT_USAGE, EXIT_AUTH = 1, 2, 77
DEFAULT_PROFILES = Path("~/.config/chipreg/profiles.toml")


class QueryError(Exception):
    """Ends the command with ``code`` after printing ``message`` to stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query",
        help="read chips, facilities and findings, or export a signed report, over HTTP",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--registry", help="registry base URL (default: $CHIPREG_REGISTRY or profile)")
    p.add_argument("--token-file", type=Path, help="file holding the API token")
    p.add_argument(
        "--token-env", default="CHIPREG_TOKEN", help="environment variable holding the token"
    )
    p.add_argument("--profile", help="named profile (registry and token) from the profiles file")
    p.add_argument("--profiles-file", type=Path, help="TOML profiles file")
    p.add_argument("-o", "--output", choices=("table", "json", "csv"), default="table")
    p.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout, seconds")
    what = p.add_subparsers(dest="resource", required=True, metavar="RESOURCE")

    chips = what.add_parser("chips", help="chips by filter")
    chips.add_argument("--country")
    chips.add_argument("--facility-id", type=int)
    chips.add_argument("--operator-id", type=int)
    chips.add_argument("--model")
    chips.add_argument("--status", choices=("installed", "uninstalled"))
    chips.add_argument("--limit", type=int, default=100)
    chips.add_argument("--offset", type=int, default=0)
    what.add_parser("chip", help="one chip with custody and latest reports").add_argument("id")
    facilities = what.add_parser("facilities", help="facilities")
    facilities.add_argument("--country")
    what.add_parser("facility", help="one facility with its chips").add_argument("id", type=int)
    findings = what.add_parser("findings", help="findings by filter")
    findings.add_argument("--kind")
    findings.add_argument("--severity", choices=("low", "medium", "high", "critical"))
    findings.add_argument("--status", choices=("open", "acknowledged", "resolved"))
    findings.add_argument("--country")
    findings.add_argument("--facility-id", type=int)
    findings.add_argument("--limit", type=int, default=500)
    what.add_parser("finding", help="one finding").add_argument("id", type=int)
    export = what.add_parser(
        "export",
        help="a signed inventory or findings report: writes FILE and FILE.sig "
        "(-o csv or json; verify with chipreg audit --export FILE)",
    )
    export.add_argument("kind", choices=("inventory", "findings"))
    export.add_argument("--out", type=Path, help="where to write it (default: server's name)")
    p.set_defaults(func=_query)


def _profile(args: argparse.Namespace) -> dict[str, Any]:
    if not args.profile:
        return {}
    path = args.profiles_file or Path(os.environ.get("CHIPREG_PROFILES", DEFAULT_PROFILES))
    try:
        profiles = tomllib.loads(path.expanduser().read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise QueryError(EXIT_USAGE, f"cannot read profiles file {path}: {exc}") from exc
    profile = profiles.get(args.profile)
    if not isinstance(profile, dict):
        raise QueryError(EXIT_USAGE, f"no profile [{args.profile}] in {path}")
    return profile


def _read_token(path: Path) -> str:
    try:
        return path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise QueryError(EXIT_USAGE, f"cannot read token file: {exc}") from exc


def _connection(args: argparse.Namespace) -> tuple[str, str]:
    profile = _profile(args)
    registry = args.registry or os.environ.get("CHIPREG_REGISTRY") or profile.get("registry")
    if not registry:
        raise QueryError(
            EXIT_USAGE, "say which registry: --registry, $CHIPREG_REGISTRY or a profile"
        )
    if args.token_file:
        token = _read_token(args.token_file)
    elif os.environ.get(args.token_env):
        token = os.environ[args.token_env].strip()
    elif profile.get("token"):
        token = str(profile["token"]).strip()
    elif profile.get("token_file"):
        token = _read_token(Path(str(profile["token_file"])))
    else:
        raise QueryError(
            EXIT_USAGE, f"no token: --token-file, ${args.token_env} or a profile with a token"
        )
    return str(registry).rstrip("/"), token


def _get(http: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Any:
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        r = http.get(path, params=clean)
    except httpx.HTTPError as exc:
        raise QueryError(EXIT_USAGE, f"cannot reach the registry: {exc}") from exc
    if r.status_code == 200:
        return r.json()
    try:
        problem = r.json()
        why = f"{problem.get('code')}: {problem.get('detail')}"
    except ValueError:
        why = r.text[:200]
    if r.status_code in (401, 403):
        raise QueryError(EXIT_AUTH, f"refused ({r.status_code} {why})")
    if r.status_code == 404:
        raise QueryError(EXIT_NOT_FOUND, f"not found ({why})")
    raise QueryError(EXIT_USAGE, f"the registry answered {r.status_code} ({why})")


def _emit(output: str, data: Any, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    elif output == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(["" if c is None else c for c in row] for row in rows)
        sys.stdout.write(out.getvalue())
    else:
        print(table(headers, rows) if rows else "(none)")


def _fields(obj: dict[str, Any]) -> list[list[object]]:
    return [[k, v] for k, v in obj.items() if not isinstance(v, dict | list)]


def _chips(http: httpx.Client, args: argparse.Namespace) -> None:
    page = _get(
        http,
        "/v1/chips",
        {
            "country": args.country,
            "facility_id": args.facility_id,
            "operator_id": args.operator_id,
            "model": args.model,
            "status": args.status,
            "limit": args.limit,
            "offset": args.offset,
        },
    )
    cols = ["chip_id", "model", "vendor", "country", "facility_name", "operator_name", "last_seq"]
    _emit(args.output, page, cols, [[c[k] for k in cols] for c in page["chips"]])
    if args.output == "table":
        print(f"({len(page['chips'])} of {page['total']})")


def _chip(http: httpx.Client, args: argparse.Namespace) -> None:
    detail = _get(http, f"/v1/chips/{args.id}")
    rows = [*_fields(detail["chip"]), ["vendor", detail["vendor"]]]
    if detail["facility"]:
        f = detail["facility"]
        rows += [
            ["facility", f"{f['id']} {f['name']} ({f['country']})"],
            ["operator", f.get("operator_name")],
        ]
    _emit(args.output, detail, ["field", "value"], rows)
    if args.output == "table":
        print("\ncustody:")
        print(
            table(
                ["facility", "installed", "removed"],
                [
                    [i["facility_id"], i["installed_at"], i["removed_at"] or ""]
                    for i in detail["custody"]
                ],
            )
        )


def _facilities(http: httpx.Client, args: argparse.Namespace) -> None:
    rows = _get(http, "/v1/facilities", {"country": args.country})
    cols = ["id", "name", "operator_name", "country", "declared_power_kw"]
    _emit(args.output, rows, cols, [[f.get(k) for k in cols] for f in rows])


def _facility(http: httpx.Client, args: argparse.Namespace) -> None:
    detail = _get(http, f"/v1/facilities/{args.id}")
    rows = [
        *_fields(detail["facility"]),
        ["chip_count", detail["chip_count"]],
        ["peak_tflops_bf16_total", detail["peak_tflops_bf16_total"]],
    ]
    _emit(args.output, detail, ["field", "value"], rows)


def _finding_row(f: dict[str, Any]) -> list[object]:
    return [
        f["id"],
        f["severity"],
        f["kind"],
        f["status"],
        f["facility_id"],
        f["country"],
        f["subject_id"],
        describe_finding(f["kind"], f["details"], f["summary"]),
    ]


FINDING_COLS = ["id", "severity", "kind", "status", "facility", "country", "subject", "what"]


def _findings(http: httpx.Client, args: argparse.Namespace) -> None:
    page = _get(
        http,
        "/v1/findings",
        {
            "kind": args.kind,
            "severity": args.severity,
            "status": args.status,
            "country": args.country,
            "facility_id": args.facility_id,
            "limit": args.limit,
        },
    )
    _emit(args.output, page, FINDING_COLS, [_finding_row(f) for f in page["findings"]])


def _finding(http: httpx.Client, args: argparse.Namespace) -> None:
    f = _get(http, f"/v1/findings/{args.id}")
    rows: list[list[object]] = [
        *_fields(f),
        ["evidence", " ".join(str(i) for i in f["evidence"])],
    ]
    _emit(args.output, f, ["field", "value"], rows)


def _export(http: httpx.Client, args: argparse.Namespace) -> None:
    if args.output == "table":
        raise QueryError(EXIT_USAGE, "an export is -o csv or -o json")
    made = _get(http, f"/v1/exports/{args.kind}", {"format": args.output})
    path: Path = args.out or Path(made["filename"])
    sig = path.with_name(path.name + ".sig")
    try:
        path.write_text(made["content"], encoding="utf-8")
        sig.write_text(made["signature"], encoding="utf-8")
    except OSError as exc:
        raise QueryError(EXIT_USAGE, f"cannot write the export: {exc}") from exc
    print(
        f"wrote {path} and {sig} (cut at checkpoint {made['checkpoint_size']}); verify with "
        f"chipreg audit --export {path} --log-vkey VKEY"
    )


COMMANDS: dict[str, Callable[[httpx.Client, argparse.Namespace], None]] = {
    "chips": _chips,
    "chip": _chip,
    "facilities": _facilities,
    "facility": _facility,
    "findings": _findings,
    "finding": _finding,
    "export": _export,
}


def _query(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        registry, token = _connection(args)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=registry, headers=headers, timeout=args.timeout) as http:
            COMMANDS[args.resource](http, args)
    except QueryError as exc:
        print(f"chipreg query: {exc}", file=sys.stderr)
        return exc.code
    return 0
