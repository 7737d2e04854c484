"""``chipreg vendor``: what a chip manufacturer runs: a root, endorsements, bulk enrollment.

``init-root`` and ``endorse`` work offline with the root key (keep it on an offline machine);
``enroll`` sends the endorsed chips to the registry with the vendor's API token. The three
compose as JSON lines: ``chipreg agent discover`` (or the factory's key list) ->
``vendor endorse`` -> ``vendor enroll``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.errors import AgentError, RegistryRejected
from attestation.certs import create_vendor_root, issue_chip_certificate, load_vendor_root
from attestation.errors import AttestationError
from attestation.keys import PrivateKey, PublicKey
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

BATCH_CHIPS = 10_000  # the most chips one POST /v1/chips/batch takes


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "vendor",
        help="manufacturer tools: vendor root, chip endorsement certificates, bulk enrollment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="vendor_command", required=True, metavar="COMMAND")

    q = cmds.add_parser(
        "init-root",
        help="create a vendor root key and its self-signed certificate (files)",
        description="Create an Ed25519 root key (PEM, mode 0600) and a self-signed root CA "
        "certificate naming the vendor. Neither file is overwritten. Register the certificate "
        "with `chipreg admin create-vendor` or POST /v1/vendors.",
    )
    q.add_argument("--name", required=True, help="vendor name, as registered (e.g. NVIDIA)")
    q.add_argument("--key-file", type=Path, default=Path("vendor-root.key"))
    q.add_argument("--cert-file", type=Path, default=Path("vendor-root.pem"))
    q.add_argument("--valid-days", type=int, default=3650, help="default: %(default)s")
    q.set_defaults(func=_init_root)

    q = cmds.add_parser(
        "endorse",
        help="issue endorsement certificates for chip public keys (one, or JSON lines)",
        description="Issue one endorsement certificate per chip key, signed by the vendor root. "
        "One chip: --chip-id, --model, --public-key. Many: --in FILE of JSON lines "
        '{"chip_id", "model", "public_key"} (the output of `chipreg agent discover`); each '
        'output line is the input line plus "certificate_pem". Every line is checked before '
        "anything is written; a bad line is named by its number.",
    )
    q.add_argument("--root-key", type=Path, required=True)
    q.add_argument("--root-cert", type=Path, required=True)
    q.add_argument("--chip-id")
    q.add_argument("--model")
    q.add_argument("--public-key", help="base64 of the raw 32-byte Ed25519 public key")
    q.add_argument("--in", dest="input", type=Path, help="JSON lines of chips ('-': stdin)")
    q.add_argument("--out", type=Path, help="JSON lines out (default: stdout)")
    q.add_argument("--valid-days", type=int, default=3650, help="default: %(default)s")
    q.set_defaults(func=_endorse)

    q = cmds.add_parser(
        "enroll",
        help="enroll endorsed chips in the registry in bulk (POST /v1/chips/batch)",
        description="Send JSON lines with certificate_pem (the output of `vendor endorse`) to "
        "POST /v1/chips/batch, 10,000 per request; each request is all or nothing. A refused "
        "request prints one line per refused chip with its input line number.",
    )
    q.add_argument("--vendor-id", type=int, required=True)
    q.add_argument("--in", dest="input", type=Path, required=True, help="JSON lines ('-': stdin)")
    q.add_argument(
        "--peak-tflops-bf16", type=float, help="for lines without peak_tflops_bf16 (TFLOP/s)"
    )
    q.add_argument("--tdp-watts", type=float, help="for lines without tdp_watts")
    add_remote_args(q, "CHIPREG_VENDOR_TOKEN")
    q.set_defaults(func=_enroll)


def _validity(days: int) -> tuple[datetime, datetime]:
    if not 1 <= days <= 36_500:
        raise CommandError("--valid-days must be between 1 and 36500")
    now = datetime.now(UTC).replace(microsecond=0)
    # Valid from an hour ago: a registry whose clock runs a little behind still accepts it.
    return now - timedelta(hours=1), now + timedelta(days=days)


def _init_root(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        for path in (args.key_file, args.cert_file):
            if path.exists():
                raise CommandError(f"{path} exists already; refusing to overwrite it")
        not_before, not_after = _validity(args.valid_days)
        key = PrivateKey.generate()
        pem = create_vendor_root(args.name, key, not_before=not_before, not_after=not_after)
        write_new_file(args.key_file, key.to_pem(), secret=True)
        write_new_file(args.cert_file, pem, secret=False)
    except (CommandError, AttestationError) as exc:
        return fail("vendor init-root", exc)
    root = load_vendor_root(pem)
    print(
        json.dumps(
            {
                "name": root.name,
                "fingerprint": root.fingerprint,
                "not_after": root.not_after.isoformat(),
                "key_file": str(args.key_file),
                "cert_file": str(args.cert_file),
            }
        )
    )
    return 0


def _chips_to_endorse(args: argparse.Namespace) -> list[tuple[int, dict[str, Any]]]:
    one = (args.chip_id, args.model, args.public_key)
    if args.input is not None:
        if any(one):
            raise CommandError("give either --in or --chip-id/--model/--public-key, not both")
        return list(read_json_lines(args.input))
    if not all(one):
        raise CommandError("give --chip-id, --model and --public-key (or --in FILE)")
    return [(1, {"chip_id": args.chip_id, "model": args.model, "public_key": args.public_key})]


def _endorse(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        root_key = read_private_key(args.root_key)
        root_pem = args.root_cert.read_bytes()
        not_before, not_after = _validity(args.valid_days)
        out: list[str] = []
        for number, chip in _chips_to_endorse(args):
            try:
                pem = issue_chip_certificate(
                    root_pem=root_pem,
                    root_key=root_key,
                    chip_id=_text(chip, "chip_id"),
                    model=_text(chip, "model"),
                    chip_key=PublicKey.from_b64(_text(chip, "public_key")),
                    not_before=not_before,
                    not_after=not_after,
                )
            except (AttestationError, CommandError) as exc:
                raise CommandError(f"line {number}: {exc}") from exc
            out.append(json.dumps({**chip, "certificate_pem": pem.decode()}))
    except OSError as exc:
        return fail("vendor endorse", CommandError(f"{exc.filename}: {exc.strerror}"))
    except (CommandError, AttestationError) as exc:
        return fail("vendor endorse", exc)
    text = "".join(line + "\n" for line in out)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    print(f"chipreg vendor endorse: {len(out)} certificates issued", file=sys.stderr)
    return 0


def _text(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value:
        raise CommandError(f"{field} must be a non-empty string")
    return value


def _number(obj: dict[str, Any], field: str, default: float | None, number: int) -> float:
    value = obj.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        flag = "--" + field.replace("_", "-")
        raise CommandError(f"line {number}: {field} missing (give it per line or {flag})")
    return float(value)


def _enroll(args: argparse.Namespace, _settings: Settings) -> int:
    enrolled = 0
    try:
        lines: list[int] = []
        items: list[dict[str, Any]] = []
        for number, obj in read_json_lines(args.input):
            try:
                pem = _text(obj, "certificate_pem")
            except CommandError as exc:
                raise CommandError(f"line {number}: {exc}") from exc
            lines.append(number)
            items.append(
                {
                    "certificate_pem": pem,
                    "peak_tflops_bf16": _number(
                        obj, "peak_tflops_bf16", args.peak_tflops_bf16, number
                    ),
                    "tdp_watts": _number(obj, "tdp_watts", args.tdp_watts, number),
                }
            )
        if not items:
            raise CommandError("no chips to enroll")
        with registry_api(args) as (api, token):
            for start in range(0, len(items), BATCH_CHIPS):
                body = {"vendor_id": args.vendor_id, "chips": items[start : start + BATCH_CHIPS]}
                try:
                    answer = api.post("/v1/chips/batch", token, body)
                except RegistryRejected as exc:
                    # Name each refused chip by its input line, not only its index in a batch.
                    errors = exc.problem.get("errors")
                    for item in errors if isinstance(errors, list) else []:
                        if isinstance(item, dict) and isinstance(item.get("index"), int):
                            item["line"] = lines[start + item["index"]]
                    raise remote_error(exc) from exc
                except AgentError as exc:
                    raise remote_error(exc) from exc
                enrolled += int(answer["enrolled"])
                print(json.dumps(answer), flush=True)
    except OSError as exc:
        return fail("vendor enroll", CommandError(f"{exc.filename}: {exc.strerror}"))
    except CommandError as exc:
        if enrolled:
            print(f"chipreg vendor enroll: {enrolled} chips were enrolled before", file=sys.stderr)
        return fail("vendor enroll", exc)
    print(f"chipreg vendor enroll: {enrolled} chips enrolled", file=sys.stderr)
    return 0
