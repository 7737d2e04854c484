"""Failures a command cannot recover from, said in one line instead of a traceback.

The CLI's one error handler (``registry.cli.main``) asks this module what to print: a protocol
core error (:mod:`attestation.errors`, :mod:`verifier.errors`: a malformed time, key or
certificate, an unknown policy) is the user's input and exits 2, like a usage error; a database or
configuration failure exits 1. Commands let those errors through instead of catching each.

An operator who points ``CHIPREG_DATABASE_URL`` at a server that is down, or mistypes it, needs
to read what is wrong and where, not 117 lines of SQLAlchemy internals. The URL is shown with
its password masked; a driver message is cut to its first line and passed through
:func:`registry.logconfig.redact`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from registry.errors import is_core_error
from registry.logconfig import redact

if TYPE_CHECKING:
    from registry.settings import Settings

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "describe_failure", "masked_url"]

EXIT_BAD_INPUT = 2
"""What a command exits with when its input is wrong (argparse's code for a usage error)."""
EXIT_FAILURE = 1
"""What a command exits with when the database or the configuration fails it."""


def masked_url(url: str) -> str:
    """A database URL safe to print: the password, if any, replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return redact(url)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def describe_failure(exc: BaseException, settings: Settings) -> tuple[str, int] | None:
    """One line and the exit code for a bad input, database or configuration failure; None for
    anything else (a bug, whose traceback is worth seeing)."""
    if is_core_error(exc):
        return str(exc), EXIT_BAD_INPUT
    line = _database_failure(exc, settings)
    return None if line is None else (line, EXIT_FAILURE)


def _database_failure(exc: BaseException, settings: Settings) -> str | None:
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError

    where = masked_url(settings.database_url)
    if isinstance(exc, (OperationalError, InterfaceError)):
        return f"cannot use the database at {where}: {_first_line(exc)}"
    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        return f"invalid CHIPREG_DATABASE_URL {where}: {_first_line(exc)}"
    return None
