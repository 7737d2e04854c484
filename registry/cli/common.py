"""What the manufacturer and operator commands share: key files, JSON lines, API calls.

Errors leave as one line on stderr and a non-zero exit code: :class:`CommandError` carries the
line; registry answers and transport failures are translated here, at the edge.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from agents.client import JsonApi, check_registry_url
from agents.errors import AgentError, RegistryRejected
from attestation.errors import AttestationError
from attestation.keys import PrivateKey

__all__ = [
    "CommandError",
    "add_remote_args",
    "fail",
    "read_json_lines",
    "read_private_key",
    "registry_api",
    "write_new_file",
]


class CommandError(Exception):
    """A command cannot go on; the message is the one line the user sees."""


def fail(command: str, exc: Exception) -> int:
    """Print ``chipreg <command>: <why>`` on stderr; the exit code of a failed command."""
    print(f"chipreg {command}: {exc}", file=sys.stderr)
    problem = getattr(exc, "problem", None)
    if isinstance(problem, dict) and isinstance(problem.get("errors"), list):
        # A refused batch: its per-item report, one JSON line each, after the summary line.
        for item in problem["errors"]:
            print(json.dumps(item), file=sys.stderr)
    return 1


def write_new_file(path: Path, data: bytes, *, secret: bool) -> None:
    """Create ``path`` with ``data``; never overwrite (keys are not replaceable by accident)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    except FileExistsError:
        raise CommandError(f"{path} exists already; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def read_private_key(path: Path) -> PrivateKey:
    try:
        return PrivateKey.from_pem(path.read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read key {path}: {exc.strerror}") from exc
    except AttestationError as exc:
        raise CommandError(f"{path} is not an Ed25519 private key (PEM): {exc}") from exc


def read_json_lines(path: Path | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of ``path`` ('-' or None: stdin)."""
    handle = sys.stdin if path is None or str(path) == "-" else path.open(encoding="utf-8")
    try:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise CommandError(f"line {number}: not JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise CommandError(f"line {number}: want a JSON object")
            yield number, obj
    finally:
        if handle is not sys.stdin:
            handle.close()


def add_remote_args(p: argparse.ArgumentParser, token_env: str) -> None:
    p.add_argument(
        "--registry",
        default=os.environ.get("CHIPREG_REGISTRY_URL"),
        help="registry base URL, e.g. https://registry.example.org (default: "
        "$CHIPREG_REGISTRY_URL)",
    )
    p.add_argument(
        "--token-env",
        default=token_env,
        help="environment variable that holds the API token (default: %(default)s)",
    )


@contextmanager
def registry_api(args: argparse.Namespace, timeout: float = 300.0) -> Iterator[tuple[JsonApi, str]]:
    """The registry's JSON API and the token, both checked before any call is made."""
    if not args.registry:
        raise CommandError("give --registry URL (or set $CHIPREG_REGISTRY_URL)")
    try:
        url = check_registry_url(args.registry)
    except AgentError as exc:
        raise CommandError(str(exc)) from exc
    token = os.environ.get(args.token_env, "")
    if not token:
        raise CommandError(f"set the API token in ${args.token_env}")
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout) as http:
        yield JsonApi(http), token


def remote_error(exc: AgentError) -> CommandError:
    """A registry refusal or transport failure as the command's one line."""
    if isinstance(exc, RegistryRejected):
        return _Rejected(exc)
    return CommandError(str(exc))


class _Rejected(CommandError):
    def __init__(self, exc: RegistryRejected) -> None:
        super().__init__(f"the registry refused: {exc.status} {exc.code}: {exc.detail}")
        self.problem = exc.problem
