"""Entry point of the ``chipreg`` console script.

Start-up is kept cheap: ``chipreg --help`` and ``chipreg --version`` import no command module,
and any other invocation imports only the module of the command it runs (FastAPI, SQLAlchemy,
the verifier and the simulator are heavy: seconds on a busy host). The one-line help of each
command therefore lives in :data:`COMMANDS`; a test checks it matches the command's own parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["COMMANDS", "build_parser", "chipreg_version", "main"]

#: command -> (module defining ``add_parser(sub)``, its one-line help), in ``--help`` order.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "registry.cli.demo",
        "run the whole flow on a local SQLite registry and print the findings",
    ),
    "serve": ("registry.cli.serve", "run the registry API"),
    "agent": (
        "registry.cli.agent",
        "the host agent: discover accelerators, sign, spool and post usage reports",
    ),
    "verify": ("registry.cli.verify", "run the verifier and store and print its findings"),
    "scenarios": (
        "registry.cli.scenarios",
        "run the verifier scenario suite (planted violations and honest fleets)",
    ),
    "admin": ("registry.cli.admin", "bootstrap and administration commands (direct DB access)"),
    "vendor": (
        "registry.cli.vendor",
        "manufacturer tools: vendor root, chip endorsement certificates, bulk enrollment",
    ),
    "operator": (
        "registry.cli.operator",
        "operator tools: signing key; declarations of facilities, installations, clusters",
    ),
    "witness": ("registry.cli.witness", "run a transparency-log witness (C2SP tlog-witness)"),
    "audit": (
        "registry.cli.audit",
        "audit the registry's log with your own trusted keys (treaty partners)",
    ),
    "query": (
        "registry.cli.query",
        "read chips, facilities and findings, or export a signed report, over HTTP",
    ),
}


def chipreg_version() -> str:
    """The installed distribution's version (``0+unknown`` when run from an uninstalled tree)."""
    # importlib.metadata costs a fifth of a second on a busy host: only for --version.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chipreg")
    except PackageNotFoundError:
        return "0+unknown"


def _selected(argv: Sequence[str]) -> str | None:
    # The top-level parser has no option that takes a value, so the first word is the command.
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


class _VersionAction(argparse.Action):
    """Like argparse's ``version`` action, but looks the version up only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the chipreg version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> NoReturn:
        print(f"chipreg {chipreg_version()}")
        parser.exit()


def _add_version(parser: argparse.ArgumentParser) -> None:
    """``--version`` on ``parser`` and on every subcommand parser below it."""
    if "--version" not in parser._option_string_actions:
        parser.add_argument("--version", action=_VersionAction)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_version(child)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` (if any) is imported and fully built."""
    parser = argparse.ArgumentParser(
        prog="chipreg",
        description="chipreg: a compute-and-chip verification registry. Settings come from "
        "CHIPREG_* environment variables (see README); logs go to stderr "
        "(CHIPREG_LOG_LEVEL, CHIPREG_LOG_FORMAT=text|json).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    selected = _selected(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        if name == selected:
            importlib.import_module(module_name).add_parser(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    _add_version(parser)
    return parser


def _settings_errors(exc: ValidationError) -> list[str]:
    # One line per bad setting, naming the variable; never the value (it may be a secret).
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        where = f"CHIPREG_{field.upper()}" if field else "settings"
        lines.append(f"chipreg: invalid {where}: {error['msg'].removeprefix('Value error, ')}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    from pydantic import ValidationError

    from registry.cli.errors import describe_failure
    from registry.logconfig import configure_logging
    from registry.settings import Settings

    # A command may read its settings with a subclass (``admin init`` creates the log key
    # that production settings otherwise require).
    settings_class: type[Settings] = getattr(args, "settings_class", Settings)
    try:
        settings = settings_class()
    except ValidationError as exc:
        print("\n".join(_settings_errors(exc)), file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        code: int = args.func(args, settings)
    except Exception as exc:
        failure = describe_failure(exc, settings)
        if failure is None:
            raise
        line, exit_code = failure
        print(f"chipreg {args.command}: {line}", file=sys.stderr)
        return exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
