"""``chipreg admin``: bootstrap commands that act on the database directly.

These exist for the first start (``init``: log key, schema, first admin token; no API call can
make a token without one) and for operations staff; everything else goes through the API.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from registry.api.context import utc_now
from registry.auth import Principal, Role
from registry.cli.errors import masked_url
from registry.db.engine import make_engine, make_session_factory
from registry.db.migrate import upgrade
from registry.db.models import ApiToken
from registry.errors import RegistryError, as_registry_error
from registry.logkey import create_log_key
from registry.repositories.log import LogRepository
from registry.services.accounts import AccountService
from registry.services.chipstatus import ChipStatusService
from registry.settings import BootstrapSettings, Settings

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="bootstrap and administration commands (direct DB access)")
    cmds = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "init",
        help="first start: create the log key, the schema and the first admin token",
        description="Create the log's signing key at CHIPREG_LOG_KEY_FILE (refusing to overwrite "
        "one), create or upgrade the schema at CHIPREG_DATABASE_URL, issue the first admin token "
        "and print it (once) with the log's verifier key to publish to partners. Works in "
        "production mode, which every other command refuses without the key.",
    )
    p.add_argument("--admin-name", default="admin", help="name of the first admin token")
    p.set_defaults(func=_init, settings_class=BootstrapSettings)

    p = cmds.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(func=_migrate)

    tokens = cmds.add_parser("tokens", help="issue, list and revoke API tokens")
    tcmds = tokens.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")
    p = tcmds.add_parser("create", help="issue an API token and print its secret once")
    _token_args(p)
    p = tcmds.add_parser("list", help="every token (JSON lines), revoked ones too; no secrets")
    p.set_defaults(func=_list_tokens)
    p = tcmds.add_parser("revoke", help="revoke a token: its next request gets 401 token_revoked")
    p.add_argument("token_id", type=int, metavar="ID")
    p.add_argument("--reason", required=True, help="why (kept in the token's audit trail)")
    p.set_defaults(func=_revoke_token)

    p = cmds.add_parser("create-token", help="the same as `tokens create`")
    _token_args(p)

    p = cmds.add_parser("create-vendor", help="register a manufacturer and its root certificate")
    p.add_argument("--name", required=True)
    p.add_argument("--root-cert", required=True, type=Path, help="PEM file of the vendor root")
    p.set_defaults(func=_create_vendor)

    p = cmds.add_parser("create-operator", help="register a datacenter operator and its key")
    p.add_argument("--name", required=True)
    p.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code")
    p.add_argument("--public-key", required=True, help="base64 raw Ed25519 public key")
    p.set_defaults(func=_create_operator)

    p = cmds.add_parser(
        "rotate-operator-key",
        help="register an operator's new declaration key (logged; earlier declarations stay "
        "verifiable under the old key)",
    )
    p.add_argument("--operator-id", required=True, type=int)
    p.add_argument("--public-key", required=True, help="base64 raw Ed25519 public key")
    p.add_argument("--reason", required=True, type=_reason, help="why, for the log")
    p.set_defaults(func=_rotate_operator_key)

    p = cmds.add_parser(
        "decommission-chip",
        help="take a chip out of service for good (logged; it is no longer expected to report)",
    )
    p.add_argument("--chip-id", required=True)
    p.add_argument("--reason", required=True, type=_reason, help="why, for the log")
    p.set_defaults(func=_chip_status, action="decommission")

    p = cmds.add_parser(
        "revoke-chip", help="stop trusting a chip's key (logged; its reports are refused)"
    )
    p.add_argument("--chip-id", required=True)
    p.add_argument("--reason", required=True, type=_reason, help="why, for the log")
    p.set_defaults(func=_chip_status, action="revoke")


def _token_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--vendor-id", type=int)
    p.add_argument("--operator-id", type=int)
    p.set_defaults(func=_create_token)


def _fail(message: str) -> int:
    print(f"chipreg admin: {message}", file=sys.stderr)
    return 2


def _token_doc(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "vendor_id": token.vendor_id,
        "operator_id": token.operator_id,
        "created_at": token.created_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def _init(args: argparse.Namespace, settings: Settings) -> int:
    key_file = settings.log_key_file
    if key_file.exists():
        return _fail(
            f"the log key {key_file} exists already; refusing to overwrite it (a new key forks "
            "the log's identity for every partner). To re-run, point CHIPREG_LOG_KEY_FILE "
            "elsewhere; for more tokens use `chipreg admin tokens create`"
        )
    try:
        engine = make_engine(settings.database_url)
        upgrade(engine)
    except SQLAlchemyError as exc:
        return _fail(f"cannot migrate the database: {type(exc).__name__}: {exc.args[0]}")
    sessions = make_session_factory(engine)
    with sessions() as session:
        accounts = AccountService(session, utc_now)
        if accounts.tokens() or LogRepository(session).sequenced_size() > 0:
            # A new key for a log that has entries would fork its identity for partners.
            return _fail(
                "the database is initialised already (it has tokens or log entries); "
                "`admin init` is for a fresh registry. For more tokens use "
                "`chipreg admin tokens create`"
            )
        try:
            issued = accounts.create_token(args.admin_name, Role.ADMIN)
            # The key last, just before the commit: a failure before it leaves nothing behind.
            signer = create_log_key(key_file, settings.log_origin)
            token_id = issued.record.id
            session.commit()
        except FileExistsError:
            session.rollback()
            return _fail(f"the log key {key_file} appeared meanwhile; refusing to overwrite it")
        except (RegistryError, SQLAlchemyError) as exc:
            session.rollback()
            return _fail(f"cannot issue the first admin token: {exc}")
    print(
        json.dumps(
            {
                "log_key_file": str(key_file),
                "log_origin": settings.log_origin,
                "log_verifier_key": signer.verifier_key(),
                "admin_token_id": token_id,
                "admin_token": issued.secret,
            },
            indent=2,
        )
    )
    print(
        "chipreg admin init: keep the admin token secret (it is shown only this once); publish "
        "log_verifier_key to partners (it is also served at GET /v1/log/key)",
        file=sys.stderr,
    )
    return 0


def _run(settings: Settings, action: Callable[[AccountService], dict[str, object]]) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        try:
            result = action(AccountService(session, utc_now))
            session.commit()
        except Exception as caught:
            session.rollback()
            exc = as_registry_error(caught)
            if exc is None:
                raise
            print(json.dumps({"error": exc.code, "detail": exc.detail}))
            return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


def _run_session(settings: Settings, action: Callable[[Session], dict[str, object]]) -> int:
    """Like :func:`_run`, for services other than accounts; acts as the admin role."""
    return _run(settings, lambda accounts: action(accounts.repo.session))


def _reason(text: str) -> str:
    """A ``--reason``: 1 to 2000 characters, as the API takes it."""
    reason = text.strip()
    if not 1 <= len(reason) <= 2000:
        raise argparse.ArgumentTypeError("must be 1 to 2000 characters")
    return reason


CLI_ADMIN = Principal(token_id=0, name="chipreg admin (cli)", role=Role.ADMIN)


def _chip_status(args: argparse.Namespace, settings: Settings) -> int:
    def action(session: Session) -> dict[str, object]:
        service = ChipStatusService(session, utc_now)
        if args.action == "decommission":
            chip = service.decommission(CLI_ADMIN, args.chip_id, args.reason)
            return {"chip_id": chip.chip_id, "decommissioned_at": chip.decommissioned_at}
        chip = service.revoke(CLI_ADMIN, args.chip_id, args.reason)
        return {"chip_id": chip.chip_id, "revoked_at": chip.revoked_at}

    return _run_session(settings, action)


def _rotate_operator_key(args: argparse.Namespace, settings: Settings) -> int:
    def action(service: AccountService) -> dict[str, object]:
        key = service.rotate_operator_key(CLI_ADMIN, args.operator_id, args.public_key, args.reason)
        return {
            "operator_id": key.operator_id,
            "public_key": key.public_key,
            "log_index": key.log_index,
        }

    return _run(settings, action)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    upgrade(make_engine(settings.database_url))
    print(f"schema is up to date on {masked_url(settings.database_url)}")
    return 0


def _create_token(args: argparse.Namespace, settings: Settings) -> int:
    def action(service: AccountService) -> dict[str, object]:
        issued = service.create_token(
            args.name, Role(args.role), vendor_id=args.vendor_id, operator_id=args.operator_id
        )
        return {**_token_doc(issued.record), "token": issued.secret}

    return _run(settings, action)


def _list_tokens(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        for token in AccountService(session, utc_now).tokens():
            print(json.dumps(_token_doc(token)))
    return 0


def _revoke_token(args: argparse.Namespace, settings: Settings) -> int:
    def action(service: AccountService) -> dict[str, object]:
        return _token_doc(service.revoke_token(args.token_id, reason=args.reason))

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
