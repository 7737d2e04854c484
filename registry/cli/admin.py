"""``chipreg admin``: bootstrap commands that act on the database directly.

These exist for the first admin token (no API call can make one without a token) and for
operations staff; everything else goes through the API.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from registry.api.context import utc_now
from registry.auth import Role
from registry.cli.errors import masked_url
from registry.db.engine import make_engine, make_session_factory
from registry.db.migrate import upgrade
from registry.errors import RegistryError
from registry.services.accounts import AccountService
from registry.settings import Settings

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="bootstrap and administration commands (direct DB access)")
    cmds = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")

    p = cmds.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(func=_migrate)

    p = cmds.add_parser("create-token", help="issue an API token and print it once")
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--vendor-id", type=int)
    p.add_argument("--operator-id", type=int)
    p.set_defaults(func=_create_token)

    p = cmds.add_parser("create-vendor", help="register a manufacturer and its root certificate")
    p.add_argument("--name", required=True)
    p.add_argument("--root-cert", required=True, type=Path, help="PEM file of the vendor root")
    p.set_defaults(func=_create_vendor)

    p = cmds.add_parser("create-operator", help="register a datacenter operator and its key")
    p.add_argument("--name", required=True)
    p.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code")
    p.add_argument("--public-key", required=True, help="base64 raw Ed25519 public key")
    p.set_defaults(func=_create_operator)


def _run(settings: Settings, action: Callable[[AccountService], dict[str, object]]) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        try:
            result = action(AccountService(session, utc_now))
            session.commit()
        except RegistryError as exc:
            session.rollback()
            print(json.dumps({"error": exc.code, "detail": exc.detail}))
            return 2
    print(json.dumps(result, indent=2))
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    upgrade(make_engine(settings.database_url))
    print(f"schema is up to date on {masked_url(settings.database_url)}")
    return 0


def _create_token(args: argparse.Namespace, settings: Settings) -> int:
    def action(service: AccountService) -> dict[str, object]:
        issued = service.create_token(
            args.name, Role(args.role), vendor_id=args.vendor_id, operator_id=args.operator_id
        )
        return {"id": issued.record.id, "role": args.role, "token": issued.secret}

    return _run(settings, action)


def _create_vendor(args: argparse.Namespace, settings: Settings) -> int:
    pem = args.root_cert.read_text()

    def action(service: AccountService) -> dict[str, object]:
        vendor = service.create_vendor(args.name, pem)
        return {"id": vendor.id, "name": vendor.name, "fingerprint": vendor.fingerprint}

    return _run(settings, action)


def _create_operator(args: argparse.Namespace, settings: Settings) -> int:
    if len(args.country) != 2 or not args.country.isupper():
        print(json.dumps({"error": "invalid_request", "detail": "--country must be like US"}))
        return 2

    def action(service: AccountService) -> dict[str, object]:
        op = service.create_operator(args.name, args.country, args.public_key)
        return {"id": op.id, "name": op.name, "country": op.country}

    return _run(settings, action)
