"""``chipreg witness``: run a C2SP tlog-witness for the registry's log (treaty partners)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from attestation.cosignature import CosignatureSigner
from attestation.errors import FormatError
from attestation.note import NoteVerifier
from registry.settings import Settings
from registry.witness import Witness, create_witness_app, generate_witness_key

__all__ = ["add_parser"]

DESCRIPTION = """\
A witness cosigns the registry's checkpoints after checking that each one is consistent
with the last one it cosigned (C2SP tlog-witness add-checkpoint, tlog-cosignature v1), so the
registry cannot show two partners two histories. It refuses a fork with 422 and says so.

  chipreg witness keygen --name witness.example/w1 --key-file witness.key
  VKEY=$(curl -s REGISTRY/v1/log/key | jq -r .verifier_key)
  chipreg witness serve --key-file witness.key --log-vkey "$VKEY" \\
      --state-file witness-state.json --port 8090

Give the printed verifier key (type 0x04) to the registry (CHIPREG_WITNESSES) and to auditors.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser(
        "witness",
        help="run a transparency-log witness (C2SP tlog-witness)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = w.add_subparsers(dest="witness_command", required=True, metavar="COMMAND")

    p = cmds.add_parser("keygen", help="create a witness key and print its verifier key")
    p.add_argument("--name", required=True, help="cosigner name, e.g. witness.example/w1")
    p.add_argument("--key-file", required=True, type=Path)
    p.set_defaults(func=_keygen)

    p = cmds.add_parser("serve", help="serve POST /add-checkpoint")
    p.add_argument("--key-file", required=True, type=Path, help="from `chipreg witness keygen`")
    p.add_argument(
        "--log-vkey",
        action="append",
        required=True,
        help="verifier key of a log to witness (name+id+base64); repeatable",
    )
    p.add_argument(
        "--state-file",
        required=True,
        type=Path,
        help="JSON file with the latest cosigned checkpoint per log (created if missing)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.set_defaults(func=_serve)


def _keygen(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        signer = generate_witness_key(args.name, args.key_file)
    except FileExistsError:
        print(f"chipreg witness: {args.key_file} exists; not overwriting", file=sys.stderr)
        return 2
    print(signer.verifier_key())
    return 0


def _serve(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        signer = CosignatureSigner.from_skey(args.key_file.read_text())
        logs = {v.name: v for v in (NoteVerifier.from_vkey(k) for k in args.log_vkey)}
    except (OSError, FormatError) as exc:
        print(f"chipreg witness: {exc}", file=sys.stderr)
        return 2
    witness = Witness(signer, logs, args.state_file)
    print(f"chipreg witness {signer.verifier_key()}", flush=True)
    print(f"witnessing {', '.join(sorted(logs))} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        create_witness_app(witness),
        host=args.host,
        port=args.port,
        log_config=None,  # through registry.logconfig, like every chipreg process
        access_log=True,
    )
    return 0
