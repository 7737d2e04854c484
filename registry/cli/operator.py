"""``chipreg operator``: what a datacenter operator runs: its signing key and its declarations.

Installations and clusters are declarations the operator signs with its own key (DSSE, see
PROTOCOL.md); this command builds them with the one builder the simulator also uses
(:mod:`attestation.logentries`), signs them locally (the key never leaves this machine), posts
them with the operator's API token and prints the registry's answer, one JSON line each.
``--dry-run`` prints the exact envelope bytes that would be posted and posts nothing.
Facilities are declared with the token alone (the protocol does not sign them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.errors import AgentError
from attestation.dsse import Envelope
from attestation.errors import AttestationError
from attestation.keys import PrivateKey
from attestation.logentries import sign_cluster_declaration, sign_installation_declaration
from attestation.timefmt import parse_time
from registry.cli.common import (
    CommandError,
    add_remote_args,
    fail,
    read_json_lines,
    read_private_key,
    registry_api,
    remote_error,
    write_new_file,
)
from registry.settings import Settings

__all__ = ["add_parser"]

TOKEN_ENV = "CHIPREG_OPERATOR_TOKEN"  # noqa: S105 (the name of a variable, not a secret)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "operator",
        help="operator tools: signing key; declarations of facilities, installations, clusters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="operator_command", required=True, metavar="COMMAND")

    q = cmds.add_parser(
        "keygen",
        help="create the operator's Ed25519 signing key (file, mode 0600)",
        description="Create the operator's signing key and print its public key, which the "
        "registry's admin registers (`chipreg admin create-operator --public-key ...`).",
    )
    q.add_argument("--key-file", type=Path, default=Path("operator.key"))
    q.set_defaults(func=_keygen)

    q = cmds.add_parser("declare", help="declare a facility, installations or a cluster")
    kinds = q.add_subparsers(dest="declare_kind", required=True, metavar="KIND")

    f = kinds.add_parser("facility", help="declare a facility (POST /v1/facilities)")
    f.add_argument("--operator-id", type=int, required=True)
    f.add_argument("--name", required=True)
    f.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. FI")
    f.add_argument("--latitude", type=float, required=True)
    f.add_argument("--longitude", type=float, required=True)
    f.add_argument("--declared-power-kw", type=float, required=True)
    f.add_argument("--pue", type=float, default=1.3, help="default: %(default)s")
    f.add_argument("--non-it-load-kw", type=float, default=0.0, help="default: %(default)s")
    _common(f, signed=False)
    f.set_defaults(func=_facility)

    i = kinds.add_parser(
        "installation",
        help="declare chips installed at a facility (one signed declaration per chip)",
        description="Declare that chips are (from --installed-at) at a facility: an "
        "installation, or a move between this operator's facilities. One signed declaration "
        "and one POST /v1/installations per chip.",
    )
    i.add_argument("--facility-id", type=int, required=True)
    _chips(i)
    i.add_argument("--installed-at", help="YYYY-MM-DDTHH:MM:SSZ (default: now)")
    _common(i, signed=True)
    i.set_defaults(func=_installation)

    c = kinds.add_parser(
        "cluster", help="declare a cluster of chips working together (POST /v1/clusters)"
    )
    c.add_argument("--facility-id", type=int, required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--purpose", default="training", help="default: %(default)s")
    _chips(c)
    c.add_argument("--start", required=True, help="YYYY-MM-DDTHH:MM:SSZ")
    c.add_argument("--end", required=True, help="YYYY-MM-DDTHH:MM:SSZ")
    _common(c, signed=True)
    c.set_defaults(func=_cluster)


def _chips(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chip-id", action="append", default=[], help="repeatable")
    p.add_argument(
        "--chips-file",
        type=Path,
        help='JSON lines with "chip_id" (e.g. the output of `chipreg agent discover`)',
    )


def _common(p: argparse.ArgumentParser, *, signed: bool) -> None:
    if signed:
        p.add_argument("--key-file", type=Path, default=Path("operator.key"))
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the exact bytes that would be posted"
        + (" (the signed DSSE envelope)" if signed else "")
        + "; post nothing",
    )
    add_remote_args(p, TOKEN_ENV)


def _keygen(args: argparse.Namespace, _settings: Settings) -> int:
    key = PrivateKey.generate()
    try:
        write_new_file(args.key_file, key.to_pem(), secret=True)
    except (CommandError, OSError) as exc:
        return fail("operator keygen", exc)
    public = key.public_key
    print(
        json.dumps(
            {"key_file": str(args.key_file), "public_key": public.to_b64(), "key_id": public.key_id}
        )
    )
    return 0


def _chip_ids(args: argparse.Namespace) -> list[str]:
    chip_ids = list(args.chip_id)
    if args.chips_file is not None:
        for number, obj in read_json_lines(args.chips_file):
            value = obj.get("chip_id")
            if not isinstance(value, str) or not value:
                raise CommandError(f"{args.chips_file} line {number}: no chip_id")
            chip_ids.append(value)
    if not chip_ids:
        raise CommandError("give --chip-id (repeatable) or --chips-file")
    return chip_ids


def _time(text: str, flag: str) -> datetime:
    try:
        return parse_time(text)
    except AttestationError as exc:
        raise CommandError(f"{flag}: {exc}") from exc


def _send(args: argparse.Namespace, path: str, bodies: Sequence[tuple[bytes, Any]]) -> None:
    """Post each (exact bytes, JSON body), printing each answer; or print the bytes only."""
    if args.dry_run:
        for raw, _ in bodies:
            sys.stdout.buffer.write(raw + b"\n")
        return
    with registry_api(args, timeout=60.0) as (api, token):
        for done, (_, body) in enumerate(bodies):
            try:
                answer = api.post(path, token, body)
            except AgentError as exc:
                if done:
                    print(f"chipreg operator: {done} declared before this", file=sys.stderr)
                raise remote_error(exc) from exc
            print(json.dumps(answer), flush=True)


def _facility(args: argparse.Namespace, _settings: Settings) -> int:
    body = {
        "operator_id": args.operator_id,
        "name": args.name,
        "country": args.country,
        "latitude": args.latitude,
        "longitude": args.longitude,
        "declared_power_kw": args.declared_power_kw,
        "pue": args.pue,
        "non_it_load_kw": args.non_it_load_kw,
    }
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    try:
        _send(args, "/v1/facilities", [(raw, body)])
    except CommandError as exc:
        return fail("operator declare facility", exc)
    return 0


def _signed(envelope: Envelope) -> tuple[bytes, Any]:
    return envelope.to_json(), envelope.to_dict()


def _installation(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        installed_at = (
            _time(args.installed_at, "--installed-at")
            if args.installed_at
            else datetime.now(UTC).replace(microsecond=0)
        )
        key = read_private_key(args.key_file)
        bodies = [
            _signed(
                sign_installation_declaration(
                    chip_id=chip_id,
                    facility_id=args.facility_id,
                    installed_at=installed_at,
                    key=key,
                )
            )
            for chip_id in _chip_ids(args)
        ]
        _send(args, "/v1/installations", bodies)
    except (CommandError, AttestationError) as exc:
        return fail("operator declare installation", exc)
    return 0


def _cluster(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        key = read_private_key(args.key_file)
        envelope = sign_cluster_declaration(
            name=args.name,
            purpose=args.purpose,
            facility_id=args.facility_id,
            chip_ids=sorted(_chip_ids(args)),
            start=_time(args.start, "--start"),
            end=_time(args.end, "--end"),
            key=key,
        )
        _send(args, "/v1/clusters", [_signed(envelope)])
    except (CommandError, AttestationError) as exc:
        return fail("operator declare cluster", exc)
    return 0
